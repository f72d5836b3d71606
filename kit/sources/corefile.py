"""Read a CoreDNS Corefile (also NodeLocal DNSCache templates) into server blocks, zones and plugins.

The syntax is CoreDNS's fork of the Caddy v1 Caddyfile:

- tokens are separated by white space; ``#`` outside quotes starts a comment up to the end of
  the line; ``"..."`` quotes a token (it may span lines; ``\\"`` is a literal quote);
- a server block is one or more keys (``.:53``, ``cluster.local:53 in-addr.arpa:53``,
  ``dns://example.org:1053``, ``tls://.:853``, ``10.0.0.0/24``; a trailing ``,`` continues the key
  list on the next line) followed by ``{ ... }``; a single block may also omit its braces;
- inside a block every line is a plugin (directive) with arguments, optionally followed by its own
  ``{ ... }`` block of option lines (which may nest further);
- ``(name) { ... }`` defines a snippet, ``import name`` pastes it, ``import FILE-or-GLOB`` pastes
  files (relative to the Corefile's directory);
- ``{$VAR}`` / ``{%VAR%}`` are environment variables (substituted only when ``env=`` is given).

Templates are read too: NodeLocal DNSCache ``__PILLAR__X__`` tokens are ordinary words, and Go
template actions (``{{ KubeDNS.Domain }}``, kops) are kept as part of the word they touch. A line
holding only a template action is left out and recorded in :attr:`Corefile.notes`; both branches
of ``{{ if }} ... {{ else }} ... {{ end }}`` are kept and each server block records the template
conditions it sits under (:attr:`ServerBlock.conditions`).

Where a Corefile comes from in an incident: the file itself, a ConfigMap manifest
(``kubectl get cm node-local-dns -o yaml`` or ``-o json``; :func:`read_corefile` takes the
``Corefile:`` key out of it), or the NodeLocal DNSCache log, which prints the effective Corefile
with the placeholders substituted after ``Using config file:`` (:func:`read_corefile_from_log`).

Zones and forward settings come out as frames (:meth:`Corefile.zone_settings`,
:meth:`Corefile.forward_settings` with :data:`FORWARD_SCHEMA`, shared with
:func:`kit.sources.unbound.read_unbound_conf`), and :meth:`Corefile.log_format` gives the ``log``
plugin's format for :func:`kit.read_coredns_log`.
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kit.errors import InputFileError, InputFormatError
from kit.schema import check_schema
from kit.sources._io import read_bytes, read_raw
from kit.timeutil import duration_s

__all__ = [
    "COMBINED_LOG_FORMAT",
    "COMMON_LOG_FORMAT",
    "FORWARD_SCHEMA",
    "ZONES_SCHEMA",
    "Corefile",
    "Directive",
    "ServerBlock",
    "ServerKey",
    "read_corefile",
    "read_corefile_from_log",
]

log = logging.getLogger(__name__)

#: coredns plugin/log/log.go ``CommonLogFormat`` (formats.md §1.1); also the default format.
COMMON_LOG_FORMAT = (
    '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
    "{rcode} {>rflags} {rsize} {duration}"
)
#: coredns plugin/log/log.go ``CombinedLogFormat``.
COMBINED_LOG_FORMAT = COMMON_LOG_FORMAT + ' "{>opcode}"'

#: One row per (server-block key, forward directive, upstream). Shared with
#: :func:`kit.sources.unbound.read_unbound_conf` so one finding covers both resolvers.
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

#: One row per server-block key (zone and port) of a Corefile.
ZONES_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # mixes dtype classes and pl.List instances
        "zone": pl.String,
        "port": pl.UInt16,
        "scheme": pl.String,
        "key": pl.String,
        "plugins": pl.List(pl.String),
        "has_forward": pl.Boolean,
        "has_cache": pl.Boolean,
        "cache_ttl_s": pl.Float64,
        "success_capacity": pl.Int64,
        "success_ttl_s": pl.Float64,
        "denial_capacity": pl.Int64,
        "denial_ttl_s": pl.Float64,
        "prefetch": pl.Int64,
        "serve_stale": pl.Boolean,
        "has_log": pl.Boolean,
        "log_format": pl.String,
        "has_errors": pl.Boolean,
        "conditions": pl.List(pl.String),
        "source": pl.String,
        "line_no": pl.UInt32,
    }
)

_DEFAULT_PORTS = {
    "dns": 53,
    "tls": 853,
    "quic": 853,
    "grpc": 443,
    "https": 443,
    "https3": 443,
}
_UPSTREAM_PORTS = {"dns": 53, "tls": 853}
_TEMPLATE_CONTROL = re.compile(r"^(if|else|end|range|with|define|block|template|break|continue)\b")
_ENV = re.compile(r"\{\$([^{}$]+)\}|\{%([^{}%]+)%\}")
_MAX_IMPORT_DEPTH = 10
_MAX_NESTING = 50
# "Corefile: |" (or Corefile.base, quoted keys, |- |+ |2 indicators) in a ConfigMap manifest
_YAML_COREFILE_KEY = re.compile(
    r"""^([ \t]*)["']?(Corefile(?:\.base)?)["']?[ \t]*:[ \t]*\|[-+0-9]*[ \t]*(?:#.*)?$""", re.M
)
_USING_CONFIG = re.compile(r"\[INFO\] Using config file:\s*$")
# kubectl --prefix, then CRI "<ts> stdout F " or kubectl --timestamps "<ts> "
_LOG_WRAPPER = re.compile(
    r"^(?:\[pod/[^\]]+\] )?"
    r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) (?:(?:stdout|stderr) [FP] )?)?"
)
# the start of the next log message: a level tag (optionally after a Go std-log or RFC3339
# timestamp), a server banner ("cluster.local.:53 on 169.254.20.10", ".:53"), "CoreDNS-x.y.z"
_LOG_MESSAGE_START = re.compile(
    r"^\s*(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |\d{4}-\d\d-\d\dT\S+ )?"
    r"\[(?:INFO|ERROR|WARNING|DEBUG|FATAL)\]"
    r"|^\S*:\d+(?: on \S+)?\s*$|^CoreDNS-\d|^[IWEF]\d{4} \d\d:\d\d:\d\d"
)
_YAML_MANIFEST = re.compile(r"^(?:apiVersion|kind|data)[ \t]*:", re.M)


# --------------------------------------------------------------------------------------------
# data model


@dataclass(frozen=True)
class Directive:
    """One plugin line (or one option line inside a plugin's block).

    Attributes
    ----------
    name : str
        First token of the line, e.g. ``"forward"`` or ``"force_tcp"``.
    args : tuple[str, ...]
        The other tokens of the line, unquoted, before any ``{``.
    block : tuple[Directive, ...] | None
        The option lines of its ``{ ... }`` block, in order; ``None`` when the line has no block.
    line_no : int
        1-based line of ``name`` in ``source``.
    source : str
        File it was read from (an imported file for imported lines), or ``"<text>"``.
    """

    name: str
    args: tuple[str, ...] = ()
    block: tuple[Directive, ...] | None = None
    line_no: int = 0
    source: str = "<text>"

    def options(self, name: str) -> tuple[Directive, ...]:
        """All option lines called ``name`` in this directive's block (empty if none)."""
        return tuple(d for d in (self.block or ()) if d.name == name)

    def option(self, name: str) -> Directive | None:
        """The last option line called ``name`` (the one a plugin's parser keeps), or ``None``."""
        found = self.options(name)
        return found[-1] if found else None


@dataclass(frozen=True)
class ServerKey:
    """One key of a server block: the zone and port it serves.

    Attributes
    ----------
    key : str
        As written (after snippet/env processing), e.g. ``"dns://cluster.local:53"``.
    scheme : str
        ``dns``, ``tls``, ``grpc``, ``https``, ``https3`` or ``quic`` (``dns`` when absent).
    zone : str
        Zone in presentation form WITHOUT the trailing dot, case preserved; the root is ``"."``.
        A CIDR key (``10.0.0.0/24``) becomes its reverse zone (``0.0.10.in-addr.arpa``); when the
        prefix is not on an octet (nibble) boundary, one key per reverse zone is produced.
    port : int | None
        Listening port; the scheme's default (53, 853 for tls/quic, 443 for grpc/https) when
        not written; ``None`` when it is a template or variable (``port_text`` holds it).
    port_text : str
        The port as written, or ``""``.
    """

    key: str
    scheme: str
    zone: str
    port: int | None
    port_text: str = ""


@dataclass(frozen=True)
class ServerBlock:
    """One server block: its keys and its plugin lines.

    Attributes
    ----------
    keys : tuple[ServerKey, ...]
        Zones and ports the block serves (several keys share the same plugins).
    directives : tuple[Directive, ...]
        Plugin lines in file order.
    line_no : int
        Line of the first key.
    source : str
        File name or ``"<text>"``.
    conditions : tuple[str, ...]
        Go-template conditions the block sits under (``"if X"`` / ``"else of: if X"``), outermost
        first; empty for plain Corefiles.
    """

    keys: tuple[ServerKey, ...]
    directives: tuple[Directive, ...]
    line_no: int
    source: str = "<text>"
    conditions: tuple[str, ...] = ()

    def plugins(self, name: str) -> tuple[Directive, ...]:
        """All plugin lines called ``name`` (e.g. several ``forward`` lines with other FROMs)."""
        return tuple(d for d in self.directives if d.name == name)

    def plugin(self, name: str) -> Directive | None:
        """The first plugin line called ``name``, or ``None``."""
        found = self.plugins(name)
        return found[0] if found else None

    @property
    def plugin_names(self) -> tuple[str, ...]:
        """Names of the plugin lines, in file order."""
        return tuple(d.name for d in self.directives)


@dataclass(frozen=True)
class Corefile:
    """A parsed Corefile.

    Attributes
    ----------
    blocks : tuple[ServerBlock, ...]
        Server blocks in file order (snippet definitions are not blocks).
    source : str
        File name (``Path.name``) or ``"<text>"``.
    snippets : tuple[str, ...]
        Names of the ``(snippet)`` definitions.
    notes : tuple[str, ...]
        Everything that was read but not turned into structure, one text per item with its line:
        dropped template lines, unresolved ``import``\\ s, undefined environment variables,
        replaced invalid UTF-8. Empty for a plain, self-contained Corefile.
    """

    blocks: tuple[ServerBlock, ...]
    source: str = "<text>"
    snippets: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    # ---- navigation -------------------------------------------------------------------------

    def iter_keys(self) -> Iterator[tuple[ServerKey, ServerBlock]]:
        """Yield every (key, block) pair in file order."""
        for b in self.blocks:
            for k in b.keys:
                yield k, b

    @property
    def zones(self) -> tuple[str, ...]:
        """Distinct zones served, in file order (presentation form, no trailing dot)."""
        seen: dict[str, None] = {}
        for k, _ in self.iter_keys():
            seen.setdefault(k.zone, None)
        return tuple(seen)

    def blocks_for(self, zone: str, port: int | None = None) -> tuple[ServerBlock, ...]:
        """Server blocks serving ``zone`` (case-insensitive, trailing dot optional), optionally on ``port``.

        Raises
        ------
        KeyError
            No block serves that zone (and port); the message lists the zones there are.
        """
        want = {zone.lower(), _norm_zone(zone).lower()}
        found = tuple(
            dict.fromkeys(
                b
                for k, b in self.iter_keys()
                if k.zone.lower() in want and (port is None or k.port == port)
            )
        )
        if not found:
            where = f" on port {port}" if port is not None else ""
            raise KeyError(f"no server block for zone {zone!r}{where}; zones: {list(self.zones)}")
        return found

    def log_format(self, zone: str, port: int | None = None) -> str | None:
        """The format string the ``log`` plugin uses for ``zone``, or ``None`` if it does not log.

        ``{common}`` and ``{combined}`` are expanded to CoreDNS's constants
        (:data:`COMMON_LOG_FORMAT`, :data:`COMBINED_LOG_FORMAT`); ``log`` without a format (or
        with only name scopes, or a block) uses :data:`COMMON_LOG_FORMAT`. The result can be
        passed to ``read_coredns_log(..., log_format=...)``. When several blocks serve the zone
        (different ports, template branches), the first one that logs wins.

        Raises
        ------
        KeyError
            No block serves ``zone``.
        """
        for b in self.blocks_for(zone, port):
            fmt = _log_format(b)
            if fmt is not None:
                return fmt
        return None

    # ---- frames -----------------------------------------------------------------------------

    def forward_settings(self) -> pl.DataFrame:
        """Every ``forward`` upstream with its options, one row per key x forward line x upstream.

        Returns
        -------
        polars.DataFrame
            Schema :data:`FORWARD_SCHEMA`, in file order:

            - ``resolver`` (String): always ``"coredns"`` here (``"unbound"`` from the unbound reader).
            - ``zone`` (String): the zone whose queries this upstream gets, presentation form
              without trailing dot, case preserved, root ``"."``: the forward FROM when it is
              not ``.``, else the server block's zone.
            - ``port`` (UInt16): the server block's listening port (null when templated).
            - ``upstream`` (String): ``host:port``, IPv6 in brackets (``[::1]:53``); the default
              port (53, 853 for ``tls://``) is added when absent; placeholders (``__PILLAR__…``,
              ``{{ … }}``, ``{$VAR}``) and files (``/etc/resolv.conf``) are kept as written;
              null for a ``forward`` line without upstream (which CoreDNS would refuse).
            - ``transport`` (String): ``"tcp"`` when ``force_tcp`` is set, ``"udp"`` when
              ``prefer_udp`` is set, ``"tls"`` for a ``tls://`` upstream, null for the default
              (UDP, retried over TCP when truncated).
            - ``force_tcp`` (Boolean), ``prefer_udp`` (Boolean): whether the option is present.
            - ``policy`` (String): ``random``/``round_robin``/``sequential``; null when not set
              (CoreDNS default ``random``).
            - ``max_concurrent`` (Int64): null when not set (unlimited).
            - ``expire_s`` (Float64, seconds): connection expiry; null when not set (default 10 s).
            - ``health_check_s`` (Float64, seconds): null when not set (default 0.5 s).
            - ``source`` (String): file name or ``"<text>"``.
            - ``line_no`` (UInt32): line of the ``forward`` directive.
        """
        rows: list[dict[str, object]] = []
        for key, block in self.iter_keys():
            for fwd in block.plugins("forward"):
                rows.extend(_forward_rows(key, fwd, block))
        df = pl.DataFrame(rows, schema=FORWARD_SCHEMA, orient="row") if rows else None
        if df is None:
            df = pl.DataFrame(schema=FORWARD_SCHEMA)
        check_schema(df, FORWARD_SCHEMA, name="forward_settings")
        return df

    def zone_settings(self) -> pl.DataFrame:
        """Per server-block key: plugins, cache, log and errors settings.

        Returns
        -------
        polars.DataFrame
            Schema :data:`ZONES_SCHEMA`, one row per key in file order:

            - ``zone`` (String): presentation form without trailing dot, case preserved, root ``"."``.
            - ``port`` (UInt16): listening port (null when templated).
            - ``scheme`` (String): ``dns``, ``tls``, ``grpc``, ``https``, ``https3``, ``quic``.
            - ``key`` (String): the key as written.
            - ``plugins`` (List[String]): plugin names in file order.
            - ``has_forward`` (Boolean): a ``forward`` line is present.
            - ``has_cache`` (Boolean): a ``cache`` line is present.
            - ``cache_ttl_s`` (Float64, seconds): ``cache TTL`` first argument (max TTL for
              both success and denial); null when not written (default 3600 s / 1800 s).
            - ``success_capacity`` / ``denial_capacity`` (Int64, entries): from the ``success`` /
              ``denial`` option lines; null when not set (default 9984).
            - ``success_ttl_s`` / ``denial_ttl_s`` (Float64, seconds): max TTL from those lines.
            - ``prefetch`` (Int64): ``prefetch AMOUNT``; null when not set.
            - ``serve_stale`` (Boolean): ``serve_stale`` option present.
            - ``has_log`` (Boolean): a ``log`` line is present.
            - ``log_format`` (String): see :meth:`log_format`; null without ``log``.
            - ``has_errors`` (Boolean): an ``errors`` line is present.
            - ``conditions`` (List[String]): Go-template conditions (see :class:`ServerBlock`).
            - ``source`` (String): file name or ``"<text>"``.
            - ``line_no`` (UInt32): line of the block's first key.
        """
        rows: list[dict[str, object]] = []
        for key, block in self.iter_keys():
            cache = block.plugin("cache")
            c = _cache_settings(cache, block.source)
            rows.append(
                {
                    "zone": key.zone,
                    "port": key.port,
                    "scheme": key.scheme,
                    "key": key.key,
                    "plugins": list(block.plugin_names),
                    "has_forward": block.plugin("forward") is not None,
                    "has_cache": cache is not None,
                    **c,
                    "has_log": block.plugin("log") is not None,
                    "log_format": _log_format(block),
                    "has_errors": block.plugin("errors") is not None,
                    "conditions": list(block.conditions),
                    "source": block.source,
                    "line_no": block.line_no,
                }
            )
        df = (
            pl.DataFrame(rows, schema=ZONES_SCHEMA, orient="row")
            if rows
            else pl.DataFrame(schema=ZONES_SCHEMA)
        )
        check_schema(df, ZONES_SCHEMA, name="zone_settings")
        return df


# --------------------------------------------------------------------------------------------
# public entry point


def read_corefile(
    path_or_text: str | bytes | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    source_name: str | None = None,
) -> Corefile:
    """Parse a Corefile from a file or from text.

    Parameters
    ----------
    path_or_text
        A path (``os.PathLike``, or a ``str`` naming an existing file; gzip is looked through),
        or the Corefile text itself: a ``str`` containing a newline or a ``{`` is always text,
        and so are ``bytes``.
    env
        Values for ``{$VAR}`` / ``{%VAR%}``. ``None`` (default) keeps them as written, which is
        what you want for a Corefile copied from a cluster. Variables missing from ``env`` are
        kept as written and noted.
    source_name
        Name used in ``source`` columns and error messages for text input (default ``"<text>"``).

    Returns
    -------
    Corefile
        Server blocks with keys (zone, port), plugins, their arguments and nested option
        blocks. Zones follow the kit's ``qname`` convention: presentation form WITHOUT the
        trailing dot, case preserved, root ``"."``. See :meth:`Corefile.forward_settings`,
        :meth:`Corefile.zone_settings` and :meth:`Corefile.log_format`.

    Raises
    ------
    InputNotFoundError
        ``path_or_text`` is a path-like or a one-line string that names no file (also a
        ``FileNotFoundError``).
    InputFileError
        The file is not a regular file (a FIFO, device...) or cannot be read.
    InputFormatError
        Unbalanced braces, an unterminated quote, a missing snippet body, an import cycle,
        binary data (a NUL byte), or an ``import`` of a file that is not a readable regular file
        (a directory, a dangling symlink, a device: CoreDNS refuses those too); the message names
        the file and line.
    """
    base_dir: Path | None = None
    if isinstance(path_or_text, bytes):
        data, name = path_or_text, source_name or "<text>"
    elif isinstance(path_or_text, str) and ("\n" in path_or_text or "{" in path_or_text):
        data, name = path_or_text.encode("utf-8", "surrogatepass"), source_name or "<text>"
    else:
        p = Path(os.fspath(path_or_text))
        raw = read_raw(p, what="Corefile")
        data, name, base_dir = raw.data, source_name or p.name, p.parent
        if raw.notes:
            raise InputFormatError(
                "damaged gzip stream: " + "; ".join(raw.notes),
                path=p,
                hint="Decompress what you can by hand and pass the text",
            )
    parser = _Parser(name=name, env=env, base_dir=base_dir)
    cf = parser.parse(data)
    log.debug(
        "%s: %d server blocks, %d keys, %d notes",
        name,
        len(cf.blocks),
        sum(len(b.keys) for b in cf.blocks),
        len(cf.notes),
    )
    return cf


def read_corefile_from_log(
    path: str | os.PathLike[str], *, occurrence: int = -1, env: Mapping[str, str] | None = None
) -> Corefile:
    """The effective Corefile that NodeLocal DNSCache printed in its log after ``Using config file:``.

    node-cache substitutes the ``__PILLAR__…__`` placeholders at start-up and logs the result as
    one multi-line message (formats.md §2.4), so its log is the only place that shows the real
    upstreams. The log may be raw, CRI-wrapped (``<ts> stdout F …``), from ``kubectl logs
    --timestamps`` / ``--prefix``, or docker json-file lines; gzip is looked through.

    Parameters
    ----------
    path
        The log file.
    occurrence
        Which ``Using config file:`` message to read when the log holds several (restarts,
        reloads): ``-1`` (default) the last, ``0`` the first.
    env
        As for :func:`read_corefile`.

    Returns
    -------
    Corefile
        Parsed like :func:`read_corefile`, with ``source`` the log's file name and ``line_no``
        the log's physical line numbers. ``notes`` starts with the line of the message used.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    InputFormatError
        The log holds no ``Using config file:`` message (or fewer than ``occurrence`` asks
        for), or the printed Corefile does not parse.
    """
    p = Path(os.fspath(path))
    raw = read_raw(p, what="node-cache log")
    lines = raw.data.decode("utf-8", "replace").split("\n")
    bodies = [_unwrap_log_line(ln) for ln in lines]
    starts = [i for i, b in enumerate(bodies) if _USING_CONFIG.search(b)]
    if not starts:
        raise InputFormatError(
            "no 'Using config file:' message in this log",
            path=p,
            hint="node-cache prints its Corefile at start-up; take the log from the pod's first "
            "lines (kubectl logs --since-time or the CRI log file)",
        )
    try:
        start = starts[occurrence]
    except IndexError:
        raise InputFormatError(
            f"the log has {len(starts)} 'Using config file:' messages; occurrence={occurrence} "
            "is out of range",
            path=p,
        ) from None
    keep = [""] * len(lines)
    end = start + 1
    while end < len(lines) and not _LOG_MESSAGE_START.match(bodies[end]):
        keep[end] = bodies[end]
        end += 1
    parser = _Parser(name=p.name, env=env, base_dir=None)
    cf = parser.parse("\n".join(keep).encode("utf-8", "surrogatepass"))
    note = f"{p.name}:{start + 1}: Corefile printed after 'Using config file:' (lines {start + 2}-{end})"
    return Corefile(
        blocks=cf.blocks, source=cf.source, snippets=cf.snippets, notes=(note, *cf.notes)
    )


def _unwrap_log_line(line: str) -> str:
    """A log line without its collector wrapper (CRI, kubectl --timestamps/--prefix, docker json)."""
    s = line.rstrip("\r")
    if s.startswith("{"):
        try:
            obj = json.loads(s)
        except (ValueError, RecursionError):
            return s
        if isinstance(obj, dict):
            for key in ("log", "message", "msg"):
                if isinstance(obj.get(key), str):
                    return str(obj[key]).rstrip("\n")
        return s
    return _LOG_WRAPPER.sub("", s, count=1)


# --------------------------------------------------------------------------------------------
# lexer


@dataclass
class _Tok:
    text: str
    line: int
    quoted: bool
    source: str
    conditions: tuple[str, ...] = ()
    template_only: bool = False  # the whole token is one Go-template action
    line_alone: bool = False  # the only token on its line


#: Longest Corefile / unbound.conf line read (characters). Real lines are under a few hundred.
MAX_LINE_CHARS = 65_536


def first_long_line(text: str) -> tuple[int, str] | None:
    """``(line number, its start)`` of the first line longer than :data:`MAX_LINE_CHARS`.

    Linear in the text (a regex ``[^\\n]{65537}`` would be quadratic on lines just under it).
    """
    if len(text) <= MAX_LINE_CHARS:
        return None
    start = 0
    no = 1
    while True:
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end
        if stop - start > MAX_LINE_CHARS:
            return no, text[start : start + 60]
        if end < 0:
            return None
        start, no = end + 1, no + 1


def _lex(text: str, source: str, notes: list[str]) -> list[_Tok]:
    """Split Caddyfile text into tokens (Caddy v1 lexer rules + Go-template actions kept whole)."""
    toks: list[_Tok] = []
    i, n, line = 0, len(text), 1
    conds: list[str] = []
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        start_line = line
        if ch == '"':
            buf: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise InputFormatError(
                        "unterminated quoted string",
                        path=source,
                        line=start_line,
                        hint='Close the string with " (a literal quote is written \\")',
                    )
                c = text[i]
                # Caddy v1 lexer: a backslash escapes the next character; only an escaped
                # quote loses its backslash ("a\\"b" is a"b, "a\\\\" is a\\\\)
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    buf.append(nxt if nxt == '"' else c + nxt)
                    line += nxt == "\n"
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                buf.append(c)
                i += 1
            toks.append(_Tok("".join(buf), start_line, True, source, tuple(conds)))
            continue
        # a bare word; Go-template actions {{ ... }} are taken whole (they contain spaces)
        buf = []
        actions = 0
        pure = True
        while i < n:
            c = text[i]
            if text.startswith("{{", i):
                end = text.find("}}", i + 2)
                if end < 0:
                    raise InputFormatError(
                        "unterminated Go-template action '{{' (no '}}')",
                        path=source,
                        line=line,
                        hint="Render the template first, or close the action",
                    )
                action = text[i : end + 2]
                line += action.count("\n")
                buf.append(action)
                actions += 1
                i = end + 2
                continue
            if c.isspace() or c == "#":
                break
            pure = False
            buf.append(c)
            i += 1
        word = "".join(buf)
        if actions == 1 and pure:
            inner = word[2:-2].strip().strip("-").strip()
            m = _TEMPLATE_CONTROL.match(inner)
            if m:
                kw = m.group(1)
                if kw in {"if", "range", "with", "define", "block"}:
                    conds.append(inner)
                elif kw == "else":
                    if conds:
                        conds[-1] = f"else of: {conds[-1]}" + (
                            f" / {inner}" if inner != "else" else ""
                        )
                    else:
                        notes.append(f"{source}:{start_line}: template 'else' without 'if'")
                elif kw == "end":
                    if conds:
                        conds.pop()
                    else:
                        notes.append(
                            f"{source}:{start_line}: template 'end' without opening action"
                        )
                else:
                    notes.append(f"{source}:{start_line}: template action {word!r} left out")
                continue
            toks.append(_Tok(word, start_line, False, source, tuple(conds), template_only=True))
            continue
        toks.append(_Tok(word, start_line, False, source, tuple(conds)))
    if conds:
        notes.append(f"{source}: template actions left open at end of file: {conds}")
    # mark tokens alone on their line
    by_line: dict[int, int] = {}
    for t in toks:
        by_line[t.line] = by_line.get(t.line, 0) + 1
    for t in toks:
        t.line_alone = by_line[t.line] == 1
    return toks


# --------------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, *, name: str, env: Mapping[str, str] | None, base_dir: Path | None) -> None:
        self.name = name
        self.env = env
        self.base_dir = base_dir
        self.notes: list[str] = []
        self.snippets: dict[str, list[_Tok]] = {}

    # -- text handling ------------------------------------------------------------------------

    def _decode(self, data: bytes, source: str) -> str:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise InputFormatError(
                "NUL byte: this is binary data, not a Corefile",
                path=source,
                offset=nul,
                hint="Pass the Corefile text (e.g. kubectl get cm coredns -o jsonpath='{.data.Corefile}')",
            )
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.notes.append(
                f"{source}: invalid UTF-8 at byte {exc.start}; replaced by U+FFFD as CoreDNS does"
            )
            return data.decode("utf-8", "replace")

    def _tokens(self, data: bytes, source: str, *, top: bool = False) -> list[_Tok]:
        text = self._decode(data, source)
        if top:
            text = self._unwrap_manifest(text, source)
        too_long = first_long_line(text)
        if too_long is not None:
            # real Corefile lines are short; the lexer works per character, so a line of
            # megabytes would take seconds per megabyte for nothing
            raise InputFormatError(
                f"a line of more than {MAX_LINE_CHARS:,} characters: not a Corefile",
                path=source,
                line=too_long[0],
                excerpt=too_long[1],
                hint="Is this really a Corefile?",
            )
        toks = _lex(text, source, self.notes)
        kept: list[_Tok] = []
        for t in toks:
            if t.template_only and t.line_alone:
                self.notes.append(
                    f"{source}:{t.line}: template line {t.text!r} left out (inserts text unknown here)"
                )
                continue
            t.text = self._env(t.text, source, t.line)
            kept.append(t)
        return kept

    def _env(self, text: str, source: str, line: int) -> str:
        if self.env is None or "{" not in text:
            return text
        env = self.env

        def sub(m: re.Match[str]) -> str:
            var = m.group(1) or m.group(2)
            if var in env:
                return env[var]
            self.notes.append(f"{source}:{line}: environment variable {var!r} not given; kept")
            return m.group(0)

        return _ENV.sub(sub, text)

    # -- structure ----------------------------------------------------------------------------

    def _unwrap_manifest(self, text: str, source: str) -> str:
        """The Corefile inside a Kubernetes ConfigMap (YAML ``Corefile: |`` or ``kubectl -o json``).

        For YAML, every line that is not part of a ``Corefile:`` block scalar is blanked, so line
        numbers stay those of the file. Text that is not a manifest is returned unchanged.
        """
        found = list(_YAML_COREFILE_KEY.finditer(text))
        if found and _YAML_MANIFEST.search(text):
            lines = text.split("\n")
            keep = [False] * len(lines)
            for m in found:
                key_line = text.count("\n", 0, m.start())
                key_indent = len(m.group(1).expandtabs())
                first = last = None
                for j in range(key_line + 1, len(lines)):
                    ln = lines[j]
                    if ln.strip() and len(ln) - len(ln.lstrip()) <= key_indent:
                        break
                    keep[j] = True
                    if ln.strip():
                        first = j if first is None else first
                        last = j
                if first is not None and last is not None:
                    self.notes.append(
                        f"{source}:{key_line + 1}: Corefile read from the YAML key "
                        f"{m.group(2)!r} (lines {first + 1}-{last + 1})"
                    )
            return "\n".join(ln if k else "" for ln, k in zip(lines, keep, strict=True))
        stripped = text.lstrip()
        if stripped.startswith("{") and '"Corefile' in text:
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError):
                return text
            items = obj.get("items", [obj]) if isinstance(obj, dict) else []
            parts = []
            for item in items:
                data = item.get("data") if isinstance(item, dict) else None
                if not isinstance(data, dict):
                    continue
                for key in ("Corefile", "Corefile.base"):
                    if isinstance(data.get(key), str):
                        name = (item.get("metadata") or {}).get("name", "?")
                        parts.append(data[key])
                        self.notes.append(
                            f"{source}: Corefile read from ConfigMap {name!r} key {key!r} of a JSON "
                            "manifest; line numbers count from the start of that value"
                        )
            if parts:
                return "\n".join(parts)
        return text

    def parse(self, data: bytes) -> Corefile:
        toks = self._tokens(data, self.name, top=True)
        toks = self._expand_imports(toks, depth=0, top=True)
        blocks = self._server_blocks(toks)
        return Corefile(
            blocks=tuple(blocks),
            source=self.name,
            snippets=tuple(self.snippets),
            notes=tuple(self.notes),
        )

    def _expand_imports(self, toks: list[_Tok], *, depth: int, top: bool) -> list[_Tok]:
        """Collect top-level snippet definitions and paste ``import`` lines (Caddy's parse-time import)."""
        if depth > _MAX_IMPORT_DEPTH:
            t = toks[0] if toks else None
            raise InputFormatError(
                f"imports nested deeper than {_MAX_IMPORT_DEPTH} levels (import cycle?)",
                path=t.source if t else self.name,
                line=t.line if t else None,
            )
        out: list[_Tok] = []
        i, depth_braces = 0, 0
        prev_line: tuple[str, int] | None = None
        while i < len(toks):
            t = toks[i]
            new_line = prev_line != (t.source, t.line)
            # snippet definition: "(name) {" at top level, first token of its line
            if (
                top
                and depth_braces == 0
                and new_line
                and not t.quoted
                and len(t.text) > 2
                and t.text.startswith("(")
                and t.text.endswith(")")
            ):
                body, i = self._take_braced(toks, i + 1, t, what=f"snippet {t.text}")
                self.snippets[t.text[1:-1]] = body
                prev_line = None
                continue
            if t.text == "import" and not t.quoted and new_line:
                args = []
                j = i + 1
                while j < len(toks) and (toks[j].source, toks[j].line) == (t.source, t.line):
                    args.append(toks[j])
                    j += 1
                if not args:
                    raise InputFormatError(
                        "import without a snippet name or file", path=t.source, line=t.line
                    )
                pasted = self._resolve_import(args[0], t)
                if pasted is not None:
                    out.extend(self._expand_imports(pasted, depth=depth + 1, top=False))
                i = j
                prev_line = (t.source, t.line)
                continue
            if not t.quoted:
                if t.text == "{":
                    depth_braces += 1
                elif t.text == "}":
                    depth_braces = max(0, depth_braces - 1)
            out.append(t)
            prev_line = (t.source, t.line)
            i += 1
        return out

    def _take_braced(
        self, toks: list[_Tok], i: int, opener: _Tok, *, what: str
    ) -> tuple[list[_Tok], int]:
        if i >= len(toks) or toks[i].quoted or toks[i].text != "{":
            raise InputFormatError(
                f"{what} must be followed by '{{' on the same line",
                path=opener.source,
                line=opener.line,
            )
        depth, j = 1, i + 1
        while j < len(toks):
            tj = toks[j]
            if not tj.quoted and tj.text == "{":
                depth += 1
            elif not tj.quoted and tj.text == "}":
                depth -= 1
                if depth == 0:
                    return toks[i + 1 : j], j + 1
            j += 1
        raise InputFormatError(
            f"unbalanced braces: the '{{' of {what} is never closed",
            path=opener.source,
            line=toks[i].line,
            hint="Add the missing '}'",
        )

    def _resolve_import(self, arg: _Tok, imp: _Tok) -> list[_Tok] | None:
        name = arg.text
        if name in self.snippets:
            return [
                _Tok(
                    t.text, t.line, t.quoted, t.source, t.conditions, t.template_only, t.line_alone
                )
                for t in self.snippets[name]
            ]
        if self.base_dir is None:
            self.notes.append(
                f"{imp.source}:{imp.line}: import {name!r} not resolved (no snippet of that name; "
                "files cannot be imported from text input)"
            )
            return None
        pattern = name if os.path.isabs(name) else str(self.base_dir / name)
        matches = (
            sorted(_glob.glob(pattern))
            if any(c in name for c in "*?[")
            else ([pattern] if os.path.lexists(pattern) else [])
        )
        if not matches:
            self.notes.append(
                f"{imp.source}:{imp.line}: import {name!r} not resolved (no snippet or file matches)"
            )
            return None
        out: list[_Tok] = []
        for m in matches:
            p = Path(m)
            if fnmatch.fnmatch(p.name, ".*"):
                continue
            try:
                # regular files only: "import /dev/zer*" must not read forever
                data = read_bytes(p, what="imported file")
            except InputFileError as exc:
                raise InputFormatError(
                    f"import {name!r}: {m}: {exc.reason}", path=imp.source, line=imp.line
                ) from None
            out.extend(self._tokens(data, p.name))
        return out

    def _server_blocks(self, toks: list[_Tok]) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if not t.quoted and t.text in {"{", "}"}:
                raise InputFormatError(
                    f"unexpected '{t.text}' where a server block key (e.g. '.:53') was expected",
                    path=t.source,
                    line=t.line,
                    hint="Check for an extra brace or a missing zone before '{'",
                )
            # keys: up to the end of the line, or further while a key ends with ","
            keys_text: list[_Tok] = []
            expecting = False
            while i < len(toks):
                k = toks[i]
                if not k.quoted and k.text == "{":
                    break
                if keys_text and not expecting and k.line != keys_text[-1].line:
                    break
                if not k.quoted and k.text == "}":
                    raise InputFormatError(
                        "unexpected '}' among server block keys",
                        path=k.source,
                        line=k.line,
                    )
                text = k.text
                expecting = text.endswith(",")
                for part in text.split(","):
                    if part:
                        keys_text.append(_Tok(part, k.line, k.quoted, k.source, k.conditions))
                if not keys_text:  # a lone "," or ""
                    keys_text.append(_Tok("", k.line, k.quoted, k.source, k.conditions))
                i += 1
            keys_text = [k for k in keys_text if k.text]
            if not keys_text:
                raise InputFormatError("server block without a key", path=t.source, line=t.line)
            if i < len(toks) and not toks[i].quoted and toks[i].text == "{":
                body, i = self._take_braced(
                    toks, i, keys_text[0], what=f"server block {keys_text[0].text!r}"
                )
            else:
                # Caddy allows a single server block without braces: the rest of the file
                body, i = toks[i:], len(toks)
            keys: list[ServerKey] = []
            for k in keys_text:
                keys.extend(_server_keys(k))
            blocks.append(
                ServerBlock(
                    keys=tuple(keys),
                    directives=tuple(self._directives(body, keys_text[0])),
                    line_no=keys_text[0].line,
                    source=keys_text[0].source,
                    conditions=keys_text[0].conditions,
                )
            )
        return blocks

    def _directives(self, toks: list[_Tok], owner: _Tok, depth: int = 1) -> list[Directive]:
        """Split a block body into lines; a line's ``{ ... }`` (possibly over many lines) is its block."""
        if depth > _MAX_NESTING:
            raise InputFormatError(
                f"blocks nested deeper than {_MAX_NESTING} levels",
                path=owner.source,
                line=owner.line,
                hint="A Corefile nests at most a few levels; check the braces",
            )
        out: list[Directive] = []
        i = 0
        while i < len(toks):
            head = toks[i]
            if not head.quoted and head.text == "}":
                raise InputFormatError(
                    "unexpected '}' with no matching '{'",
                    path=head.source,
                    line=head.line,
                    hint="Remove the extra '}'",
                )
            if not head.quoted and head.text == "{":
                raise InputFormatError(
                    "'{' must follow a plugin name on the same line",
                    path=head.source,
                    line=head.line,
                )
            args: list[str] = []
            block: tuple[Directive, ...] | None = None
            j = i + 1
            while j < len(toks):
                tj = toks[j]
                if (tj.source, tj.line) != (head.source, head.line):
                    break
                if not tj.quoted and tj.text == "{":
                    body, j = self._take_braced(toks, j, head, what=f"'{head.text}'")
                    block = tuple(self._directives(body, head, depth + 1))
                    break
                if not tj.quoted and tj.text == "}":
                    raise InputFormatError(
                        "unexpected '}' with no matching '{'",
                        path=tj.source,
                        line=tj.line,
                        hint="Remove the extra '}'",
                    )
                args.append(tj.text)
                j += 1
            out.append(Directive(head.text, tuple(args), block, head.line, head.source))
            i = j
        return out


# --------------------------------------------------------------------------------------------
# keys, upstreams, options


def _norm_zone(z: str) -> str:
    if z in {"", "."}:
        return "."
    return z[:-1] if z.endswith(".") and not z.endswith("\\.") else z


def _server_keys(tok: _Tok) -> list[ServerKey]:
    key = tok.text
    scheme, rest = "dns", key
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", key, re.S)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
    host, port_text = rest, ""
    if rest.startswith("["):
        end = rest.find("]")
        if end > 0:
            host = rest[1:end]
            after = rest[end + 1 :]
            port_text = after[1:] if after.startswith(":") else ""
    elif rest.count(":") == 1 or (rest.count(":") > 1 and "{{" in rest):
        host, port_text = rest.rsplit(":", 1)
    default = _DEFAULT_PORTS.get(scheme, 53)
    port: int | None
    if port_text == "":
        port = default
    elif _is_port(port_text):
        port = int(port_text)
    else:
        port = None
    zones = _cidr_zones(host) or [_norm_zone(host)]
    return [ServerKey(key, scheme, z, port, port_text) for z in zones]


def _cidr_zones(host: str) -> list[str]:
    if "/" not in host:
        return []
    try:
        net = ipaddress.ip_network(host, strict=False)
    except ValueError:
        return []
    step = 8 if net.version == 4 else 4
    bits = -(-net.prefixlen // step) * step
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = (
        [net] if bits == net.prefixlen else list(net.subnets(new_prefix=bits))
    )
    out = []
    for sn in subnets[:4096]:
        labels = sn.network_address.reverse_pointer.split(".")
        keep = bits // step
        host_labels = (32 if net.version == 4 else 128) // step
        out.append(
            ".".join(labels[host_labels - keep :]) if keep else labels[-2] + "." + labels[-1]
        )
    return out


def _upstream(raw: str) -> tuple[str | None, str | None]:
    """``host:port`` for one forward TO, and the transport its scheme implies (``"tls"`` or None)."""
    scheme = "dns"
    text = raw
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", raw, re.S)
    if m:
        scheme, text = m.group(1).lower(), m.group(2)
    transport = "tls" if scheme == "tls" else None
    if "__PILLAR__" in text or "{{" in text or "{$" in text or "{%" in text or text.startswith("/"):
        return raw, transport
    port = _UPSTREAM_PORTS.get(scheme, 53)
    if text.startswith("["):
        end = text.find("]")
        if end > 0:
            after = text[end + 1 :]
            if after.startswith(":") and _is_port(after[1:]):
                return f"[{text[1:end]}]:{after[1:]}", transport
            return f"[{text[1:end]}]:{port}", transport
        return raw, transport
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if ip.version == 6:
            return f"[{text}]:{port}", transport
        return f"{text}:{port}", transport
    except ValueError:
        pass
    if text.count(":") == 1:
        h, p = text.rsplit(":", 1)
        if _is_port(p):
            return f"{h}:{p}", transport
        return raw, transport
    if ":" not in text:
        return f"{text}:{port}", transport
    return raw, transport


def _is_port(text: str) -> bool:
    """``text`` is a port number 0-65535 in ASCII digits (``str.isdigit`` also accepts "٥٣" and
    "²", and ``int`` refuses strings over 4300 digits)."""
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and int(text) <= 65535


def _dur_arg(d: Directive | None, idx: int = 0) -> float | None:
    if d is None or len(d.args) <= idx:
        return None
    v = duration_s(d.args[idx])
    if v is None:
        log.warning(
            "%s:%d: %s %r is not a Go duration; left null", d.source, d.line_no, d.name, d.args[idx]
        )
    return v


def _int_arg(d: Directive | None, idx: int = 0) -> int | None:
    if d is None or len(d.args) <= idx:
        return None
    a = d.args[idx]
    if re.fullmatch(r"[+-]?[0-9]{1,18}", a):
        return int(a)
    log.warning("%s:%d: %s %r is not an integer; left null", d.source, d.line_no, d.name, a)
    return None


def _forward_rows(key: ServerKey, fwd: Directive, block: ServerBlock) -> list[dict[str, object]]:
    frm = fwd.args[0] if fwd.args else "."
    tos: tuple[str, ...] = fwd.args[1:]
    zone = key.zone if _norm_zone(frm) == "." else _norm_zone(frm)
    force_tcp = fwd.option("force_tcp") is not None
    prefer_udp = fwd.option("prefer_udp") is not None
    pol = fwd.option("policy")
    rows: list[dict[str, object]] = []
    # a forward line without upstream (CoreDNS refuses it) still gives one row, upstream null
    for to in tos or (None,):
        upstream, scheme_transport = _upstream(to) if to is not None else (None, None)
        if force_tcp:
            transport: str | None = "tcp"
        elif prefer_udp:
            transport = "udp"
        else:
            transport = scheme_transport
        rows.append(
            {
                "resolver": "coredns",
                "zone": zone,
                "port": key.port,
                "upstream": upstream,
                "transport": transport,
                "force_tcp": force_tcp,
                "prefer_udp": prefer_udp,
                "policy": pol.args[0] if pol is not None and pol.args else None,
                "max_concurrent": _int_arg(fwd.option("max_concurrent")),
                "expire_s": _dur_arg(fwd.option("expire")),
                "health_check_s": _dur_arg(fwd.option("health_check")),
                "source": fwd.source,
                "line_no": fwd.line_no,
            }
        )
    return rows


def _cache_settings(cache: Directive | None, source: str) -> dict[str, object]:
    out: dict[str, object] = {
        "cache_ttl_s": None,
        "success_capacity": None,
        "success_ttl_s": None,
        "denial_capacity": None,
        "denial_ttl_s": None,
        "prefetch": None,
        "serve_stale": False,
    }
    if cache is None:
        return out
    if cache.args and re.fullmatch(r"[0-9]{1,18}", cache.args[0]):
        out["cache_ttl_s"] = float(cache.args[0])
    for kind in ("success", "denial"):
        opt = cache.option(kind)
        if opt is not None:
            out[f"{kind}_capacity"] = _int_arg(opt, 0)
            ttl = _int_arg(opt, 1)
            out[f"{kind}_ttl_s"] = float(ttl) if ttl is not None else None
    out["prefetch"] = _int_arg(cache.option("prefetch"), 0)
    out["serve_stale"] = cache.option("serve_stale") is not None
    return out


def _log_format(block: ServerBlock) -> str | None:
    lg = block.plugin("log")
    if lg is None:
        return None
    fmt = COMMON_LOG_FORMAT
    if lg.args and "{" in lg.args[-1]:
        fmt = lg.args[-1]
    fmt = fmt.replace("{common}", COMMON_LOG_FORMAT).replace("{combined}", COMBINED_LOG_FORMAT)
    return fmt
