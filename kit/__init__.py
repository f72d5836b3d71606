"""DNS Incident Kit: from a p99 DNS latency alert in Kubernetes to the root cause.

The public API is small and imported lazily (so ``import kit`` and the CLI start fast):

- loaders: :func:`read_coredns_log`, :func:`read_corefile`, :func:`read_capture`,
  :func:`read_metrics`, :func:`read_unbound_log`, :func:`read_unbound_conf`
- errors: :class:`KitError` and its subclasses, :class:`KitWarning`
- modules for the rest: ``kit.analysis``, ``kit.promql``, ``kit.charts``, ``kit.findings``, ``kit.report``
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
    "read_coredns_log": "kit.coredns",
    "CoreDNSLog": "kit.coredns",
    "read_corefile": "kit.corefile",
    "Corefile": "kit.corefile",
    "read_capture": "kit.capture",
    "Capture": "kit.capture",
    "read_metrics": "kit.prometheus",
    "read_unbound_log": "kit.unbound",
    "read_unbound_conf": "kit.unbound",
    "ResolverLog": "kit.unbound",
}

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
