"""CoreDNS query and error logs: ``read_coredns_log`` and the helpers the notebooks use.

One call reads everything an investigator collects from CoreDNS or NodeLocal DNSCache: the ``log``
plugin's query lines, the ``errors`` plugin's lines (including ``consolidate`` summaries), startup
banners and plugin messages, in every format CoreDNS has written since release 004 (see
``notes/formats.md`` §1-3), wrapped or not by the container runtime or a collection tool (CRI files,
``kubectl logs --timestamps --prefix``, docker json-file, journald/syslog, docker compose, stern).
Wrappers are recognised line by line, so mixed files are fine.

Speed: lines are read with polars and classified with vectorised string kernels; the common query
line is split on spaces (no regex captures), rarer shapes go through one regex per shape on the
rows that need it. Docker JSON lines are decoded by polars (line by line in Python only for a block
with a malformed or partial record), CRI partial (``P``) records are joined in Python.
Files are processed in blocks of 16 MiB of text (two at a time, one per core), so memory stays near
the size of the result.

Conventions shared with the other loaders: ``ts`` is UTC; ``qname`` is the name as logged (CoreDNS
escapes special bytes as ``\\DDD`` / ``\\.``), case preserved, **without the trailing dot** (the root
is ``"."``); durations are float seconds in ``*_s`` columns.

Layout of this package (one concept per module): :mod:`.model` (the schemas and
:class:`CoreDNSLog`), :mod:`.reader` (``read_coredns_log``: files, blocks on two threads, batches,
accounting), ``_blocks`` (binary detection, block cutting, line frames), ``_native`` (the
``kit/_fastlog.c`` tokenizer and the per-block fast path), ``_classify`` (the fast and general
parts), ``_wrappers`` (JSON, CRI, prefixes, stamps, levels), ``_queries`` (query-line grammars),
``_errlines`` (errors-plugin lines), ``_formats`` (custom ``log_format``), ``_patterns`` (the
regular expressions) and :mod:`.helpers` (for the notebooks).
"""

from __future__ import annotations

from kit.sources.coredns._native import NATIVE

# for the tests, benchmarks and tools that compare the native and polars-only paths
from kit.sources.coredns._native import _native_usable as _native_usable
from kit.sources.coredns._native import _tokenizer as _tokenizer
from kit.sources.coredns._patterns import UNKNOWN_FORMAT_SHARE
from kit.sources.coredns.helpers import (
    LOOP_PROBE,
    error_counts,
    query_latency,
    slow_queries,
    without_loop_probes,
)
from kit.sources.coredns.model import (
    CHUNK_BYTES,
    ERROR_KINDS,
    ERRORS_SCHEMA,
    FILES_SCHEMA,
    LEVELS,
    LONG_LINE_REASON,
    MAX_LINE_BYTES,
    OTHER_SCHEMA,
    QUERIES_SCHEMA,
    REJECTED_SCHEMA,
    UTC,
    CoreDNSLog,
)
from kit.sources.coredns.reader import read_coredns_log

__all__ = [
    "CHUNK_BYTES",
    "ERRORS_SCHEMA",
    "ERROR_KINDS",
    "FILES_SCHEMA",
    "LEVELS",
    "LONG_LINE_REASON",
    "LOOP_PROBE",
    "MAX_LINE_BYTES",
    "NATIVE",
    "OTHER_SCHEMA",
    "QUERIES_SCHEMA",
    "REJECTED_SCHEMA",
    "UNKNOWN_FORMAT_SHARE",
    "UTC",
    "CoreDNSLog",
    "error_counts",
    "query_latency",
    "read_coredns_log",
    "slow_queries",
    "without_loop_probes",
]

# the public home of the API (kit's lazy names, documentation, reprs and pickles name it)
for _obj in (
    CoreDNSLog,
    read_coredns_log,
    error_counts,
    query_latency,
    slow_queries,
    without_loop_probes,
):
    _obj.__module__ = __name__
del _obj
