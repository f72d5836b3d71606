"""The incident lab: reproduce the reference DNS incident inside Linux network namespaces.

Real NSD upstream at 169.254.169.253 (``tcp-query-count: 1``), nftables dropping a share of TCP
SYNs towards it, unbound node-local caches at 169.254.20.10 switched from UDP to TCP upstream,
dnsperf clients, tcpdump per node, an unbound-statistics exporter scraped by a real Prometheus.
Run it with ``python -m lab run --out DIR`` (root only); see lab/README.md.
"""

from __future__ import annotations

from lab.core import LabConfig, LabError, Phase, parse_phases, run_lab

__all__ = ["LabConfig", "LabError", "Phase", "parse_phases", "run_lab"]
