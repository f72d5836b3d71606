"""What notebook 06 loads: :class:`Inputs` and :func:`load_inputs` (every artefact kind, warnings
kept per input).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.sources.artefacts import forward_settings
from kit.sources.timeline import Timeline

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Inputs:
    """Loaded inputs for :func:`run_on` (each ``None`` when not given).

    Attributes
    ----------
    capture, coredns, unbound, metrics, forward, timeline
        As the parameters of :func:`run`.
    notes : Mapping[str, str]
        Input name (``capture``, ``coredns``...) -> the warnings its loader gave, joined.
    """

    capture: Any = None
    coredns: Any = None
    unbound: Any = None
    metrics: pl.DataFrame | None = None
    forward: pl.DataFrame | None = None
    timeline: Timeline | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    node: Any = None  # kit.sources.node.NodeCounters (nstat, conntrack -S, ethtool -S, ip -s link)

    def given(self) -> pl.DataFrame:
        """Which inputs are loaded, how big they are and what their loaders warned about.

        Columns ``input`` (String), ``rows`` (Int64, null when not given), ``notes`` (String).
        """
        keys = ["capture", "coredns", "coredns", "unbound", "metrics", "forward", "node"]
        rows = [
            (
                "capture (DNS transactions)",
                None if self.capture is None else self.capture.dns.height,
            ),
            (
                "CoreDNS log (queries)",
                None if self.coredns is None else self.coredns.queries.height,
            ),
            (
                "CoreDNS log (errors)",
                None if self.coredns is None else self.coredns.errors.height,
            ),
            (
                "unbound log (replies)",
                None if self.unbound is None else self.unbound.queries.height,
            ),
            ("metrics (samples)", None if self.metrics is None else self.metrics.height),
            ("forward settings", None if self.forward is None else self.forward.height),
            ("node evidence (counters)", None if self.node is None else self.node.counters.height),
        ]
        df = pl.DataFrame(rows, schema={"input": pl.String, "rows": pl.Int64}, orient="row")
        return df.with_columns(
            notes=pl.Series([self.notes.get(k, "") for k in keys], dtype=pl.String)
        )


def _paths(x: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str | os.PathLike):
        return [os.fspath(x)]
    return [os.fspath(p) for p in x]


def load_inputs(
    *,
    capture: Sequence[str] | str | None = None,
    coredns_log: Sequence[str] | str | None = None,
    unbound_log: Sequence[str] | str | None = None,
    metrics: Sequence[str] | str | None = None,
    corefile: Sequence[str] | str | None = None,
    unbound_conf: Sequence[str] | str | None = None,
    run_json: Sequence[str] | str | None = None,
    change_time: str | None = None,
    fix_time: str | None = None,
    node_evidence: Sequence[str] | str | None = None,
) -> Inputs:
    """Load whichever artefacts are given (paths, lists, globs or folders; ``None``/empty: skip).

    Corefiles and unbound.conf files may be globs too (``"configs/unbound-*.conf"``). Each is
    read with its loader (``kit.read_capture``, ``kit.read_coredns_log``,
    ``kit.read_unbound_log``, ``kit.read_metrics``, ``kit.read_corefile(...).forward_settings()``,
    ``kit.read_unbound_conf``, :func:`kit.sources.timeline.timeline`). Loader errors propagate; loader
    warnings are kept in :attr:`Inputs.notes` (and shown by :meth:`Inputs.given`).
    """
    import kit
    from kit.sources.timeline import timeline as make_timeline

    caps = _paths(capture)
    cd = _paths(coredns_log)
    ub = _paths(unbound_log)
    mt = _paths(metrics)
    forward = forward_settings(_paths(corefile) or None, _paths(unbound_conf) or None)
    runs = _paths(run_json)
    notes: dict[str, str] = {}

    def load(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # loader warnings (rejected lines, dropped duplicates) are kept as notes for the table
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn(*args, **kwargs)
        if caught:
            notes[name] = " | ".join(str(w.message) for w in caught)
            for w in caught:
                log.info("%s: %s", name, w.message)
        return value

    return Inputs(
        capture=load("capture", kit.read_capture, caps, progress=False) if caps else None,
        coredns=load("coredns", kit.read_coredns_log, cd) if cd else None,
        unbound=load("unbound", kit.read_unbound_log, ub) if ub else None,
        metrics=load("metrics", kit.read_metrics, mt, strict=False) if mt else None,
        forward=forward,
        timeline=make_timeline(change_time=change_time, fix_time=fix_time, run_json=runs or None),
        notes=notes,
        node=load("node", kit.read_node_evidence, _paths(node_evidence))
        if _paths(node_evidence)
        else None,
    )
