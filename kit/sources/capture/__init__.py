"""Capture loader: DNS transactions, TCP connections and packet rates from pcap/pcapng files.

:func:`read_capture` reads each file with the native engine (``kit/_fastcap.c``, see
:mod:`kit.sources.capture._native`) when it supports what the file holds, else (and with
``engine="tshark"``) runs ``tshark -T fields`` (one process per file, files in parallel) with the C
locale, writes its tab-separated output to a temporary file, parses it with polars and pairs queries
with responses in polars; both engines share everything from the per-packet rows on. It returns a
:class:`Capture` of four frames (``dns``, ``tcp``, ``packets``, ``meta``) whose schemas are the
module constants :data:`DNS_SCHEMA`, :data:`TCP_SCHEMA`, :data:`PACKETS_SCHEMA` and
:data:`META_SCHEMA`. The notes below describe the tshark engine; the native one gives the same
frames.

How tshark's output is read
---------------------------
* Several DNS messages in one frame (DNS over TCP with pipelined queries) make tshark print every
  DNS field once per message. The kit asks for all occurrences (``-E occurrence=a``) joined by the
  ASCII unit separator ``0x1f``, which cannot collide with data: tshark prints a control byte inside
  a name as an escape (``\\037``). The header fields (``dns.id``, ``dns.flags``, ``dns.count.*``)
  occur exactly once per message, so they are split and zipped into one row per message; the
  question names are assigned per message from ``dns.count.queries`` (``dns.count.zones`` for an
  UPDATE, whose header counts zones and prerequisites instead of questions and answers).
* ``qname`` is what tshark shows: presentation form **without** the trailing dot, case preserved,
  the root as ``"."`` (tshark prints ``<Root>``; a one-label name whose label is literally
  ``<Root>`` looks the same in tshark's output and is shown as ``"."`` too). tshark escapes tab,
  newline and other control bytes (``\\t``, ``\\n``, ``\\037``), prints bytes that are not valid
  UTF-8 as U+FFFD, and prints a dot or backslash inside a label as-is, so those names are not
  byte-exact.
* Large files are cut into packet ranges (:data:`DEFAULT_CHUNK_PACKETS`, ``editcap -r``), each
  started :data:`CHUNK_OVERLAP_PACKETS` early so tshark's TCP state is warm, dissected by one tshark
  each, in parallel. tshark's memory grows with the packets it has seen (~160 MB + ~0.5 kB per
  packet), so this bounds it per range; TCP stream numbers are stitched across ranges so they equal
  one pass (tests compare both). A DNS-over-TCP connection already open where a range begins is
  joined mid-stream by that range's tshark; if that loses messages, ``meta.notes`` says so.
* Transactions are paired like tshark's DNS dissector: per conversation (UDP: the address/port pair,
  TCP: the ``tcp.stream``) and DNS ID, a query repeated within 5 s of the first one while still
  unanswered is a retransmission (counted in ``retransmissions``), the first response answers the
  transaction, a later one is a duplicate response (counted in ``meta``). DNS messages quoted
  inside ICMP errors are not transactions; they are counted in ``meta``.

Helpers on the frames
---------------------
:func:`latency_by` (quantiles by server/qtype/transport) and :func:`packet` / :func:`stream`
(pyshark objects for drill-down; they work inside a running Jupyter kernel). The analyses of
these frames live in :mod:`kit.analyses`: packet rates against a limit
(:mod:`kit.analyses.rates`), slow answers attributed to the upstream exchange and TCP connection
that served them (:mod:`kit.analyses.attribution`), roles and TCP towards the upstream
(:mod:`kit.analyses.upstream`).

Modules
-------
The package is cut by concept; this module only re-exports:

* :mod:`._read`: :func:`read_capture`, :class:`Capture`, engine dispatch per file;
* :mod:`._check`: checks on a file before any tool reads it;
* :mod:`._cache`: the Parquet cache and :func:`cache_dir`;
* :mod:`._native`: the native engine (``kit/_fastcap.c``);
* :mod:`._engine_tshark`: the tshark engine (``tshark -T fields``, packet ranges in parallel);
* :mod:`._fields`: typed per-packet rows from tshark's text fields;
* :mod:`._frames`: what both engines share from the rows on: DNS messages, pairing into
  transactions, TCP connections and SYN counting, ``meta``; the schemas;
* :mod:`._progress`: the progress bar;
* :mod:`._drill`: pyshark drill-down (:func:`packet`, :func:`stream`).
"""

from __future__ import annotations

from kit.sources.capture._cache import cache_dir
from kit.sources.capture._drill import packet, stream
from kit.sources.capture._engine_tshark import CHUNK_OVERLAP_PACKETS, DEFAULT_CHUNK_PACKETS
from kit.sources.capture._frames import (
    DEFAULT_DNS_PORTS,
    DNS_SCHEMA,
    META_SCHEMA,
    PACKETS_SCHEMA,
    RETRANSMISSION_TIMER_S,
    TCP_SCHEMA,
    latency_by,
)
from kit.sources.capture._read import ENGINES, Capture, read_capture

# the public names say they live here (docs, reprs, pickles, kit._LAZY's check), not in the
# private module that defines them
for _public in (Capture, read_capture, cache_dir, latency_by, packet, stream):
    _public.__module__ = __name__
del _public

__all__ = [
    "CHUNK_OVERLAP_PACKETS",
    "DEFAULT_CHUNK_PACKETS",
    "DEFAULT_DNS_PORTS",
    "DNS_SCHEMA",
    "ENGINES",
    "META_SCHEMA",
    "PACKETS_SCHEMA",
    "RETRANSMISSION_TIMER_S",
    "TCP_SCHEMA",
    "Capture",
    "cache_dir",
    "latency_by",
    "packet",
    "read_capture",
    "stream",
]
