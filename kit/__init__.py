"""DNS Incident Kit: from a p99 DNS latency alert in Kubernetes to the root cause.

The public API is small and imported lazily (so ``import kit`` and the CLI start fast):

- loaders: :func:`read_coredns_log`, :func:`read_corefile`, :func:`read_capture`,
  :func:`read_metrics`, :func:`read_unbound_log`, :func:`read_unbound_conf`,
  :func:`read_dnstap`, :func:`read_k8s_snapshot` (and :func:`attribute_clients`),
  :func:`read_node_evidence`, :func:`read_zeek_dns`, :func:`read_gadget_dns`; their result types
  and per-format readers live in their modules (``kit.sources.dnstap.DnstapLog``,
  ``kit.sources.node.read_nstat``...)
- analysis: :func:`ledger` (one row per client query joined across its hops; ``Ledger`` and its
  schemas in ``kit.analyses.ledger``)
- errors: :class:`KitError` and its subclasses, :class:`KitWarning`
- the layers as attributes, each imported on first use: ``kit.net``, ``kit.timeutil``,
  ``kit.stats``, ``kit.sources``, ``kit.promql``, ``kit.analyses``, ``kit.findings``,
  ``kit.charts``, ``kit.report`` (``import kit; kit.promql.evaluate(...)`` works)

The layout and its import rule are described in the README's "Layout" section.
"""

from __future__ import annotations

import importlib
from typing import Any

from kit.errors import (
    InputFormatError,
    KitError,
    KitWarning,
    SchemaError,
    ToolError,
    ToolNotFoundError,
)

__version__ = "0.1.0"

# name -> module that defines it
_LAZY: dict[str, str] = {
    "read_coredns_log": "kit.sources.coredns",
    "CoreDNSLog": "kit.sources.coredns",
    "read_corefile": "kit.sources.corefile",
    "Corefile": "kit.sources.corefile",
    "read_capture": "kit.sources.capture",
    "Capture": "kit.sources.capture",
    "read_metrics": "kit.sources.metrics.prometheus",
    "read_unbound_log": "kit.sources.unbound",
    "read_unbound_conf": "kit.sources.unbound",
    "ResolverLog": "kit.sources.unbound",
    # dnstap, Kubernetes snapshots (pods behind client addresses)
    "read_dnstap": "kit.sources.dnstap",
    "read_k8s_snapshot": "kit.sources.k8s",
    "attribute_clients": "kit.sources.k8s",
    # node evidence (nstat, conntrack -S, ethtool -S, ip -s link: one reader for all; the
    # per-tool readers and NodeCounters are in kit.sources.node) and other tools' DNS records
    "read_node_evidence": "kit.sources.node",
    "read_zeek_dns": "kit.sources.zeek",
    "read_gadget_dns": "kit.sources.gadget",
    # the per-query ledger across hops (captures, dnstap, CoreDNS logs); Ledger and its schemas
    # are in kit.analyses.ledger
    "ledger": "kit.analyses.ledger",
}

#: Subpackages and modules reachable as attributes of ``kit`` (imported on first access).
_SUBMODULES = (
    "analyses",
    "charts",
    "cli",
    "errors",
    "findings",
    "net",
    "promql",
    "report",
    "schema",
    "sources",
    "stats",
    "timeutil",
)

__all__ = [
    "InputFormatError",
    "KitError",
    "KitWarning",
    "SchemaError",
    "ToolError",
    "ToolNotFoundError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"kit.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
