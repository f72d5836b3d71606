"""What the notebooks say in words: timing, the change time, where the failures are counted from."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import polars as pl

from kit.analyses.bins import _whole_s
from kit.sources.coredns import CoreDNSLog

log = logging.getLogger(__name__)

__all__ = ["change_note", "failure_signal", "n_events", "nonzero_bins", "peak_rate", "timing_note"]


def n_events(frame: pl.DataFrame, count: str | None) -> int:
    """Events in ``frame``: its rows, or the sum of ``count`` (null counts as 1) when given."""
    if frame.is_empty():
        return 0
    if count is None:
        return frame.height
    return int(frame.select(pl.col(count).fill_null(1).sum()).item() or 0)


def timing_note(
    frame: pl.DataFrame, what: str = "upstream errors", *, count: str | None = None
) -> str:
    """Say whether the rows of a log frame can be placed in time, in one or two sentences.

    CoreDNS >= 1.6.3 writes no timestamp of its own: a log copied with ``kubectl logs`` (without
    ``--timestamps``) has none, and then counts per time bin and onsets are impossible. The
    notebooks print this note instead of an empty chart.

    Parameters
    ----------
    frame
        A frame with a ``ts`` column (Datetime UTC, null for a line without time), e.g.
        ``CoreDNSLog.errors`` or :func:`combined_queries`.
    what
        What the rows are, plural (``"upstream errors"``, ``"queries"``).
    count
        A column giving how many events a row stands for (``consolidated_count``: a
        ``consolidate`` summary stands for many errors; null counts 1); None counts rows.

    Returns
    -------
    str
        ``"No <what> ..."``, ``"All <n> <what> have a timestamp..."``, ``"<k> of the <n> <what>
        have no timestamp..."`` or ``"None of the <n> <what> has a timestamp..."`` with what to do.
    """
    if "ts" not in frame.columns:
        raise KeyError(f"column 'ts' not in frame (columns: {frame.columns})")
    total = n_events(frame, count)
    untimed = n_events(frame.filter(pl.col("ts").is_null()), count)
    if total == 0:
        return f"No {what} in the logs given."
    if untimed == 0:
        return f"All {total} {what} have a timestamp: they are all in the counts over time."
    if untimed == total:
        return (
            f"None of the {total} {what} has a timestamp (CoreDNS >= 1.6.3 writes none itself, "
            "and `kubectl logs` adds none without `--timestamps`): counts per time bin and the "
            "onset against the change are impossible; the totals still hold. Collect the logs "
            "with `kubectl logs --timestamps`, or copy the CRI files under /var/log/pods on the "
            "node."
        )
    return (
        f"{untimed} of the {total} {what} have no timestamp: they are in the totals but not in "
        f"the counts over time, which show the other {total - untimed}."
    )


def change_note(timeline: object | None, *, change_time: str | None = None) -> str:
    """Say which change time the onsets are measured against, and where it came from.

    Parameters
    ----------
    timeline
        A :class:`kit.sources.timeline.Timeline` (``change_time``, ``fix_time``, ``source``) or None.
    change_time
        The notebook's ``change_time`` parameter as given (None when not given): names the
        origin of the time when it overrides a run.json.

    Returns
    -------
    str
        ``"Change time: <ISO-8601 UTC> (from ...)"`` with the fix time when known, or ``"Change
        time: unknown ..."`` saying how to give it (``-p change_time <ISO-8601>``).
    """
    ct = getattr(timeline, "change_time", None)
    if ct is None:
        return (
            "Change time: unknown (no run.json and no change_time parameter): onsets are shown "
            "without it (since_change_s, before_change and after_change stay empty). Give it as "
            "`dnskit report ... -p change_time 2024-05-01T12:00:00Z`."
        )
    source = getattr(timeline, "source", None)
    origin = (
        "the change_time parameter"
        if change_time
        else f"run.json {source}"
        if source
        else "the timeline given"
    )
    text = f"Change time: {_iso(ct)} (from {origin})."
    fix = getattr(timeline, "fix_time", None)
    text += f" Fix time: {_iso(fix)}." if fix is not None else " Fix time: not known."
    return text


def _iso(t: dt.datetime) -> str:
    aware = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def failure_signal(coredns: CoreDNSLog | None = None, capture: object | None = None) -> str:
    """Say where notebook 03 counts upstream failures from: the CoreDNS ``errors`` plugin when
    its lines exist, else (labelled so) the capture's failed TCP connection attempts.

    Parameters
    ----------
    coredns
        The CoreDNS log, or None when none was given.
    capture
        A :class:`kit.sources.capture.Capture` (its ``tcp`` frame), or None when none was given.

    Returns
    -------
    str
        One or two sentences: the source used, how many lines it has, and what the other input
        (if any) is used for.
    """
    has_cap = capture is not None
    if coredns is not None and coredns.errors.height:
        e = coredns.errors
        with_up = int(e["upstream"].is_not_null().sum())
        files = e["source"].n_unique()
        text = (
            f"Upstream failures are counted from the CoreDNS errors plugin: {e.height} error "
            f"line(s) in {files} file(s), {with_up} of them naming the upstream."
        )
        if has_cap:
            text += " The capture-derived counts further down are a cross-check, not the source."
        return text
    if coredns is not None:
        text = (
            "The CoreDNS log holds no errors-plugin line: no upstream exchange failed, or the "
            "errors plugin is not in the Corefile."
        )
    else:
        text = "No CoreDNS log given: no resolver-logged upstream errors to count."
    if has_cap:
        return text + (
            " Upstream failures are shown from the capture instead (capture-derived, not logged "
            "by the resolver: TCP connection attempts, SYN retransmissions)."
        )
    return text + " Give a capture on the cache node to see failed TCP connection attempts."


def nonzero_bins(
    counts: pl.DataFrame, *, value: str = "count", by: Sequence[str] = ()
) -> pl.DataFrame:
    """The bins of a binned count that hold something: the table behind a count chart.

    Parameters
    ----------
    counts
        ``ts`` (bin start, UTC), the ``value`` column and the ``by`` columns, e.g.
        :func:`kit.sources.coredns.error_counts` (zero bins included).
    value
        The count column.
    by
        Grouping columns.

    Returns
    -------
    polars.DataFrame
        ``ts``, the ``by`` columns and ``value``, only rows with ``value > 0``, sorted by ``ts``
        then ``by``.
    """
    keys = list(by)
    return (
        counts.filter(pl.col(value) > 0)
        .select("ts", *keys, value)
        .sort(["ts", *keys], nulls_last=True)
    )


def peak_rate(
    counts: pl.DataFrame, *, every: str, value: str = "count", by: Sequence[str] = ()
) -> pl.DataFrame:
    """The busiest bin of each group, and its count as a rate per minute.

    "Hundreds of TCP i/o timeouts per minute" is the reference incident's error rate: this is the
    number to compare with it.

    Parameters
    ----------
    counts
        ``ts`` (bin start, UTC), the ``value`` column and the ``by`` columns.
    every
        The bin width the counts were made with (``"10s"``, ``"1m"``, ``"21600s"``).
    value
        The count column.
    by
        Grouping columns (one row each).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, ``total`` (Int64, sum of ``value``), ``bins`` (UInt32, bins with a
        count above 0), ``peak`` (Int64, the largest count in one bin), ``peak_ts`` (Datetime UTC,
        start of the first bin with that count; null when all are 0), ``bin_s`` (Int64, the bin
        width in seconds), ``peak_per_min`` (Float64, ``peak * 60 / bin_s``: errors per minute
        in the busiest bin, averaged over the bin when it is longer than a minute). Sorted by
        ``peak`` descending, then ``by``.

    Raises
    ------
    ValueError
        ``every`` is not a duration like ``10s``, ``1m``, ``1h``, ``1d``.
    """
    keys = list(by)
    width = _whole_s(every)
    v = pl.col(value).cast(pl.Int64)
    aggs = [
        v.sum().alias("total"),
        (v > 0).sum().cast(pl.UInt32).alias("bins"),
        v.max().alias("peak"),
        pl.col("ts").filter((v == v.max()) & (v > 0)).min().alias("peak_ts"),
    ]
    grouped = counts.group_by(keys).agg(aggs) if keys else counts.select(aggs)
    return (
        grouped.with_columns(
            pl.lit(width, dtype=pl.Int64).alias("bin_s"),
            (pl.col("peak").cast(pl.Float64) * 60.0 / width).alias("peak_per_min"),
        )
        .select(*keys, "total", "bins", "peak", "peak_ts", "bin_s", "peak_per_min")
        .sort(["peak", *keys], descending=[True, *[False] * len(keys)], nulls_last=True)
    )
