"""The scenario catalogue: one incident cause per scenario, reproduced with real software.

Each :class:`Scenario` names the cause the kit should report (the finding ids of
:mod:`kit.findings` that count as "found"), the findings that belong to the same causal chain
(allowed to be critical too), what the lab changes at the start of the ``incident`` phase, the
evidence the cause needs, and the lab parameters of a full run and of the short form run in CI.

``python -m lab run --scenario NAME --out DIR`` runs one; ``data/scenarios/NAME/`` holds the
committed run of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """One scenario of the catalogue.

    Attributes
    ----------
    name : str
        Registry key and folder name under ``data/scenarios/``.
    cause : tuple[str, ...]
        Finding ids (``kit.findings``) any of which, at ``critical`` or ``warning``, means the kit
        found this scenario's cause. Empty for ``healthy`` (nothing to find).
    chain : tuple[str, ...]
        Other finding ids of the same causal chain (mechanism, symptoms, context): they may be
        critical without being "another cause".
    change : str
        What the lab does at the start of the ``incident`` phase (one sentence).
    evidence : str
        What a user must collect for the cause to show (README catalogue).
    defaults : dict[str, Any]
        :class:`lab.core.LabConfig` values of a full run (the committed one).
    short : dict[str, Any]
        Overrides of ``defaults`` for the short form run in CI.
    """

    name: str
    cause: tuple[str, ...]
    chain: tuple[str, ...]
    change: str
    evidence: str
    defaults: dict[str, Any] = field(default_factory=dict)
    short: dict[str, Any] = field(default_factory=dict)


_SHORT_PHASES = "healthy=3,incident=12"
GZIP_OVER = 256 * 1024
"""Committed runs gzip their captures, logs and dnsperf files above this size (bytes)."""

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="forced-tcp-syn-drops",
            cause=("forced-tcp", "syn-retransmissions"),
            chain=("latency-timer-modes", "upstream-error-bursts", "metrics-blind-spot"),
            change="node1's unbound switches to tcp-upstream: yes (force_tcp); the upstream "
            "drops half of the TCP SYNs",
            evidence="the cache's config (force_tcp / tcp-upstream) and a node capture with the "
            "SYN retransmissions towards the upstream; the latency modes at 1/3/7 s",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "tcp",
                "drop": "random:0.5",
                "phases": "healthy=15,incident=30",
                "qps": 20.0,
                "client_timeout_s": 12.0,
            },
            short={"phases": "healthy=3,incident=15", "nodes": 1, "control_nodes": 0},
        ),
        Scenario(
            name="healthy",
            cause=(),
            chain=(),
            change="nothing: the caches forward over UDP and the upstream answers everything",
            evidence="the same artefacts as an incident: nothing critical may show",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "none",
                "phases": "healthy=30",
                "qps": 20.0,
                "control_nodes": 0,
                "dnstap": True,
            },
            # the short form (CI's test_healthy) stays as before: its p99 < 50 ms check is
            # close to the edge on a loaded host; tests/test_dnstap.py records dnstap itself
            short={"phases": "healthy=10", "nodes": 1, "dnstap": False},
        ),
        Scenario(
            name="servfail-storm",
            cause=("servfail-storm",),
            chain=("upstream-error-bursts",),
            change="NSD restarts with a zone file that does not load (a bad zone push): it "
            "answers SERVFAIL for the zone, unbound passes SERVFAIL on for every cache miss",
            evidence="a capture or a resolver query log with the rcodes; the upstream's log "
            "(zone failed to load)",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "none",
                "phases": "healthy=10,incident=20",
                "qps": 20.0,
                "control_nodes": 0,
                "nodes": 1,
            },
            short={"phases": _SHORT_PHASES},
        ),
        Scenario(
            name="upstream-unreachable",
            # the upstream-unreachable check names it (UDP queries to the upstream left
            # unanswered, the cache's retry timers in the latency modes)
            cause=("upstream-unreachable",),
            chain=(
                "servfail-storm",
                "upstream-error-bursts",
                "latency-timer-modes",
                "metrics-blind-spot",
            ),
            change="nftables in the upstream drops every UDP query to port 53: unbound retries "
            "on its own timers, then answers SERVFAIL",
            evidence="a node capture (queries to the upstream without answers, the cache's "
            "retries), the resolver's log (SERVFAIL, timeouts), client latencies",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "none",
                "phases": "healthy=10,incident=20",
                "qps": 20.0,
                "control_nodes": 0,
                "nodes": 1,
                "client_timeout_s": 10.0,
            },
            short={"phases": _SHORT_PHASES},
        ),
        Scenario(
            name="truncation-tcp-fallback",
            cause=("truncation-tcp-fallback",),
            chain=("syn-retransmissions", "latency-timer-modes"),
            change="node1's unbound lowers edns-buffer-size to 512 (like CoreDNS bufsize 512): "
            "the upstream's large answers come back with TC=1 and unbound retries over TCP, "
            "where the upstream drops half of the SYNs",
            evidence="a node capture with both sides: TC=1 UDP answers from the upstream, the "
            "same name asked again over TCP, the SYN retransmissions; the cache's EDNS buffer",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "random:0.5",
                "phases": "healthy=10,incident=25",
                "qps": 20.0,
                "control_nodes": 0,
                "nodes": 1,
                "client_timeout_s": 12.0,
            },
            short={"phases": _SHORT_PHASES},
        ),
        Scenario(
            name="packet-rate-limit",
            cause=("packet-rate-limit",),
            chain=("latency-timer-modes", "upstream-error-bursts", "servfail-storm"),
            change="a burst of cache misses (a second dnsperf at 1200 queries/s) against an "
            "upstream that drops the packets above 1024 per second per interface "
            "(nftables limit rate over 1024/second)",
            evidence="a node capture towards the resolver (packets per second per interface, "
            "including TCP handshakes), the node's ethtool -S (ENA pps_allowance_exceeded), "
            "client latencies and retries",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "none",
                "phases": "healthy=5,incident=5",
                "qps": 20.0,
                "control_nodes": 0,
                "nodes": 1,
                "client_timeout_s": 5.0,
                "burst_qps": 1200.0,
            },
            short={"phases": "healthy=3,incident=5"},
        ),
        Scenario(
            name="ndots-search-expansion",
            cause=("ndots-search-expansion",),
            chain=(),
            change="the pods' resolv.conf goes from ndots:1 to the Kubernetes default ndots:5 "
            "with a 4-domain search list: each external name is first tried with every search "
            "suffix (glibc stub resolver, A and AAAA)",
            evidence="a capture or a resolver query log with the NXDOMAIN answers for "
            "<name>.<search suffix>; the pod's resolv.conf",
            defaults={
                "gzip_over": GZIP_OVER,
                "mode": "udp",
                "drop": "none",
                "phases": "healthy=10,incident=20",
                "qps": 10.0,
                "control_nodes": 0,
                "nodes": 2,
                "stub_lps": 5.0,
            },
            short={"phases": "healthy=3,incident=8", "nodes": 1},
        ),
    )
}
"""The catalogue, by name (in the order of the README table)."""


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
