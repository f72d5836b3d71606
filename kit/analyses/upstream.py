"""Client-side and upstream-side views of a capture, for notebooks 04 (capture DNS) and 05 (upstream TCP).

This module gathers, under the names the notebooks have always used, analyses that live in one
module per concept:

- :mod:`kit.analyses.roles`: who is the cache and who is the upstream (:func:`infer_upstream_ips`,
  :func:`server_roles`, :func:`forwarding_evidence`, :func:`client_queries`, ...);
- :mod:`kit.analyses.tcp`: SYN counting and connections (:func:`syn_packets`,
  :func:`syn_retransmissions`, :func:`connection_summary`, :func:`syn_ladder`,
  :func:`match_ladder`, :func:`syn_drill_down`);
- :mod:`kit.analyses.latency`: :func:`outcomes`, :func:`latency_modes_by`;
- :mod:`kit.analyses.histograms`: :func:`log_histogram` (the one log-binned histogram);
- :mod:`kit.analyses.series`: :func:`slow_over_time` (the one slow-per-bin series);
- :mod:`kit.analyses.attribution`: :func:`attribution_summary`.

``qname`` is kept as the capture shows it: presentation form without the trailing dot, case
preserved, root ``"."``.
"""

from __future__ import annotations

from kit.analyses.attribution import attribution_summary
from kit.analyses.histograms import HISTOGRAM_SCHEMA_TAIL, log_histogram
from kit.analyses.latency import latency_modes_by, outcomes
from kit.analyses.roles import (
    FORWARD_WINDOW_S,
    FORWARDING_SCHEMA,
    MIN_FORWARDED,
    MIN_FORWARDED_SHARE,
    ROLES_SCHEMA,
    client_queries,
    forwarding_evidence,
    infer_cache_ips,
    infer_upstream_ips,
    server_roles,
    upstream_packets,
)
from kit.analyses.series import slow_over_time
from kit.analyses.tcp import (
    DRILL_DOWN_SCHEMA,
    LADDER_SCHEMA,
    connection_summary,
    match_ladder,
    syn_drill_down,
    syn_ladder,
    syn_packets,
    syn_retransmissions,
)

__all__ = [
    "DRILL_DOWN_SCHEMA",
    "FORWARDING_SCHEMA",
    "FORWARD_WINDOW_S",
    "HISTOGRAM_SCHEMA_TAIL",
    "LADDER_SCHEMA",
    "MIN_FORWARDED",
    "MIN_FORWARDED_SHARE",
    "ROLES_SCHEMA",
    "attribution_summary",
    "client_queries",
    "connection_summary",
    "forwarding_evidence",
    "infer_cache_ips",
    "infer_upstream_ips",
    "latency_modes_by",
    "log_histogram",
    "match_ladder",
    "outcomes",
    "server_roles",
    "slow_over_time",
    "syn_drill_down",
    "syn_ladder",
    "syn_packets",
    "syn_retransmissions",
    "upstream_packets",
]
