"""The incident's timeline: phases, the change time and the fix time.

The lab writes them into its ``run.json``; for your own artefacts, give the change time (and
optionally the fix time) as ISO-8601 strings. Every notebook marks the change on its charts and
compares before with after, so this is the one place that turns either into datetimes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError
from kit.timeutil import UTC as _UTC

__all__ = [
    "PHASES_SCHEMA",
    "Timeline",
    "parse_time",
    "read_run",
    "restrict",
    "timeline",
    "with_phase",
]


PHASES_SCHEMA = pl.Schema({"phase": pl.String(), "start": _UTC, "end": _UTC})
"""Schema of :attr:`Timeline.phases`: phase name, start and end (UTC)."""


@dataclass(frozen=True)
class Timeline:
    """Phases of an incident and the times that separate them.

    Attributes
    ----------
    phases : polars.DataFrame
        :data:`PHASES_SCHEMA`, in time order (empty when only a change time is known).
    change_time : datetime | None
        When the suspected change was made (UTC).
    fix_time : datetime | None
        When it was undone or fixed (UTC).
    source : str | None
        The run.json it came from, if any.
    """

    phases: pl.DataFrame
    change_time: datetime | None
    fix_time: datetime | None = None
    source: str | None = None


def parse_time(text: str | datetime | None, *, what: str = "time") -> datetime | None:
    """Parse an ISO-8601 time (``Z`` or offset; naive means UTC) into an aware UTC datetime.

    Raises
    ------
    ValueError
        The text is not ISO-8601; the message names ``what``.
    """
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        dt = text
    else:
        try:
            dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(
                f"{what} {text!r} is not an ISO-8601 time; write e.g. 2024-05-01T12:00:00Z"
            ) from exc
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def read_run(path: str | os.PathLike[str]) -> Timeline:
    """Read the timeline of a lab run from its ``run.json``.

    Raises
    ------
    InputFormatError
        The file is not JSON, or lacks ``phases``.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"not a JSON run file ({exc})", path=p) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("phases"), list):
        raise InputFormatError(
            "no 'phases' list: not a run.json written by the lab",
            path=p,
            hint="Give change_time instead",
        )
    rows = []
    for i, ph in enumerate(doc["phases"]):
        try:
            rows.append(
                {
                    "phase": str(ph["name"]),
                    "start": parse_time(ph["start"], what=f"phases[{i}].start"),
                    "end": parse_time(ph.get("end"), what=f"phases[{i}].end"),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFormatError(f"phases[{i}] is malformed ({exc})", path=p) from exc
    phases = pl.DataFrame(rows, schema=PHASES_SCHEMA).sort("start")
    return Timeline(
        phases=phases,
        change_time=parse_time(doc.get("change_time"), what="change_time"),
        fix_time=parse_time(doc.get("fix_time"), what="fix_time"),
        source=os.fspath(p),
    )


def timeline(
    *,
    change_time: str | datetime | None = None,
    fix_time: str | datetime | None = None,
    run_json: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> Timeline:
    """The timeline from explicit times, else from a lab ``run.json`` (a path or a list of them).

    Explicit ``change_time``/``fix_time`` win over the run file. Without either, the timeline is
    empty (no phases, no change time): notebooks then show the whole period without a marker.
    """
    base: Timeline | None = None
    if run_json:
        paths = [run_json] if isinstance(run_json, str | os.PathLike) else list(run_json)
        if paths:
            base = read_run(paths[0])
    change = parse_time(change_time, what="change_time")
    fix = parse_time(fix_time, what="fix_time")
    if base is None:
        rows = []
        if change is not None:
            rows.append({"phase": "before", "start": None, "end": change})
            rows.append({"phase": "after", "start": change, "end": fix})
            if fix is not None:
                rows.append({"phase": "fixed", "start": fix, "end": None})
        return Timeline(pl.DataFrame(rows, schema=PHASES_SCHEMA), change, fix)
    return Timeline(
        base.phases,
        change if change is not None else base.change_time,
        fix if fix is not None else base.fix_time,
        base.source,
    )


def with_phase(df: pl.DataFrame, tl: Timeline, *, ts: str = "ts") -> pl.DataFrame:
    """Add a ``phase`` column (String) naming the phase each row's ``ts`` falls in (null outside).

    A phase covers ``[start, end)``; a null start or end is open.
    """
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for phase, start, end in reversed(tl.phases.rows()):
        cond = pl.lit(True)
        if start is not None:
            cond = cond & (pl.col(ts) >= start)
        if end is not None:
            cond = cond & (pl.col(ts) < end)
        expr = pl.when(cond).then(pl.lit(phase)).otherwise(expr)
    return df.with_columns(expr.alias("phase"))


def restrict(
    obj: Any,
    *,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    timeline: Timeline | None = None,
    phase: str | None = None,
    capture_names: Sequence[str] | None = None,
) -> Any:
    """The same input limited to ``[start, end)`` (or a timeline phase) and to some captures.

    This is how a notebook's time window (``window_start``/``window_end`` parameters) is applied
    to whatever it loaded.

    Parameters
    ----------
    obj
        A :class:`kit.sources.capture.Capture`, :class:`kit.sources.coredns.CoreDNSLog`,
        :class:`kit.sources.unbound.ResolverLog`, a frame with a ``ts`` column, a dataclass holding any of
        these (its fields are restricted in turn), or ``None`` (returned as is).
    start, end
        UTC bounds, as datetimes or ISO-8601 strings (either may be ``None``: open).
    timeline, phase
        Alternatively, the bounds of the phase named ``phase`` in ``timeline.phases``.
    capture_names
        For a capture: keep only these captures (the ``capture`` column, e.g. ``["node2"]``).

    Returns
    -------
    The same type, filtered. Rows are kept by ``ts`` (TCP connections by their first packet,
    ``ts_first``); frames without a time column are kept whole; rows without a time are dropped
    only when a bound is given.

    Raises
    ------
    KeyError
        ``phase`` is not in the timeline.
    ValueError
        ``start``/``end`` is not an ISO-8601 time.
    """
    if obj is None:
        return None
    lo = parse_time(start, what="window start")
    hi = parse_time(end, what="window end")
    if phase is not None:
        if timeline is None:
            raise KeyError(f"phase {phase!r} given without a timeline")
        rows = timeline.phases.filter(pl.col("phase") == phase)
        if rows.is_empty():
            raise KeyError(
                f"phase {phase!r} not in the timeline ({timeline.phases['phase'].to_list()})"
            )
        lo, hi = rows["start"][0], rows["end"][0]
    if lo is None and hi is None and capture_names is None:
        return obj

    def cut(df: pl.DataFrame, ts: str = "ts") -> pl.DataFrame:
        cond = pl.lit(True)
        if lo is not None:
            cond = cond & (pl.col(ts) >= lo)
        if hi is not None:
            cond = cond & (pl.col(ts) < hi)
        if capture_names is not None and "capture" in df.columns:
            cond = cond & pl.col("capture").is_in(list(capture_names))
        return df.filter(cond)

    if isinstance(obj, pl.DataFrame):
        return cut(obj) if "ts" in obj.columns else obj
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"cannot restrict a {type(obj).__name__}")
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, pl.DataFrame):
            if "ts" in value.columns:
                changes[f.name] = cut(value)
            elif "ts_first" in value.columns:
                changes[f.name] = cut(value, "ts_first")
            elif capture_names is not None and "capture" in value.columns:
                changes[f.name] = value.filter(pl.col("capture").is_in(list(capture_names)))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = restrict(value, start=lo, end=hi, capture_names=capture_names)
    return dataclasses.replace(obj, **changes)
