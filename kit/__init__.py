"""DNS Incident Kit: from a p99 DNS latency alert in Kubernetes to the root cause.

The public API is small and imported lazily (so ``import kit`` and the CLI start fast):

- loaders: :func:`read_coredns_log`, :func:`read_corefile`, :func:`read_capture`,
  :func:`read_metrics`, :func:`read_unbound_log`, :func:`read_unbound_conf`
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
    # issue 18: dnstap and Kubernetes snapshots
    "read_dnstap": "kit.sources.dnstap",
    "DnstapLog": "kit.sources.dnstap",
    "read_k8s_snapshot": "kit.sources.k8s",
    "K8sSnapshot": "kit.sources.k8s",
    "attribute_clients": "kit.sources.k8s",
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
