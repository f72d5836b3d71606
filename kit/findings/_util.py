"""Helpers the checks share: shell quoting of confirm commands, capture paths, tshark address
filters, and the upstream addresses of a capture (:func:`infer_upstreams`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    pass


def _quote(text: str) -> str:
    """Single-quote for a POSIX shell."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _capture_paths(capture: Any) -> list[str]:
    if capture is None or capture.meta.is_empty():
        return ["capture.pcap"]
    return [str(p) for p in capture.meta["path"].to_list()]


def _ip_filter(ips: Sequence[str], field_v4: str = "ip.dst", field_v6: str = "ipv6.dst") -> str:
    parts = [f"{field_v6 if ':' in ip else field_v4}=={ip}" for ip in ips]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def infer_upstreams(capture: Any, forward: pl.DataFrame | None = None) -> list[str]:
    """Addresses of the upstream resolvers: :func:`kit.analyses.upstream.infer_upstream_ips` on a capture.

    The one rule of the kit (notebook 05 and :func:`kit.analyses.upstream.server_roles` use it too): the
    hosts of the forward settings first, in the order of their rows (an ``upstream`` that is not an
    IP address, such as ``/etc/resolv.conf`` or a ``__PILLAR__`` placeholder, is left out), then the
    servers the capture shows receiving forwarded queries, most forwarded first. A query is
    forwarded when the same name and type (case-insensitive) was asked of another server by
    another sender at most 0.5 s before (a query over a TCP connection opened for it counts from
    its first SYN), that one was still unanswered, and it was not answered after that one. A TCP
    connection that never got a SYN/ACK and carried no query counts as an attempt when it started
    the same way after another sender's unanswered query (all SYNs dropped: no query reaches the
    upstream). A server needs at least 3 forwarded queries and attempts, and 10 % of its queries
    and failed connections (:func:`kit.analyses.upstream.forwarding_evidence`). A client asking two
    resolvers the same name is one sender: that makes no upstream.

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture` or ``None``.
    forward
        Forward settings (``FORWARD_SCHEMA``) or ``None``; their ``upstream`` hosts come first.

    Returns
    -------
    list[str]
        Addresses without duplicates, settings first, then capture evidence (most forwarded first);
        empty when neither names nor shows an upstream.
    """
    from kit.analyses.upstream import infer_upstream_ips

    if capture is None:
        return infer_upstream_ips(None, forward=forward)
    return infer_upstream_ips(capture.dns, forward=forward, tcp=capture.tcp)


def _max_in_window(ts: pl.Series, seconds: float) -> tuple[int, datetime | None]:
    """Largest number of timestamps in any window ``[t, t + seconds)`` starting at one of them."""
    if ts.is_empty():
        return 0, None
    s = ts.sort()
    ends = s.search_sorted(s + timedelta(seconds=seconds), side="left")
    counts = ends - pl.Series(range(s.len()), dtype=ends.dtype)
    i = int(counts.arg_max() or 0)
    return int(counts[i]), s[i]
