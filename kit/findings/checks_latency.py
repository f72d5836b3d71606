"""Checks on latency distributions: timer modes, histogram bucket ceilings, metrics blind spots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analyses.latency import match_timers
from kit.findings._util import _capture_paths, _quote, infer_upstreams
from kit.findings.model import (
    KNOWN_TIMERS,
    Finding,
)
from kit.net import addresses
from kit.timeutil import UTC as _UTC

if TYPE_CHECKING:
    pass


def _match_timers(modes: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """``modes`` plus the matching :data:`KNOWN_TIMERS` entry (``timer``, ``timer_s``; null if none)."""
    timers = pl.DataFrame(
        {"timer": [n for n, _ in KNOWN_TIMERS], "timer_s": [v for _, v in KNOWN_TIMERS]},
        schema={"timer": pl.String, "timer_s": pl.Float64},
    )
    matched = match_timers(modes, timers, tolerance=tolerance)
    hit = pl.col("matches").fill_null(False)
    return matched.with_columns(
        timer=pl.when(hit).then(pl.col("timer")),
        timer_s=pl.when(hit).then(pl.col("timer_s")),
    ).drop("ratio", "matches")


def check_latency_modes(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    min_s: float = 0.5,
    min_count: int = 5,
    tolerance: float = 0.12,
) -> Finding | None:
    """Fires when slow latencies pile up at a known timer (:data:`KNOWN_TIMERS`).

    Each source given is looked at on its own with :func:`kit.analyses.latency.latency_modes`: capture
    ``latency_s`` (every transaction), CoreDNS ``duration_s``, unbound ``duration_s``. A mode
    matches a timer when it lies within ``tolerance`` (relative) of the timer's value.

    Parameters
    ----------
    capture, coredns, unbound
        Loaded inputs (any may be ``None``).
    min_s
        Only latencies at or above this (seconds) are considered.
    min_count
        Fewest observations in a mode.
    tolerance
        Relative distance of a mode to a timer, e.g. 0.12 = 12 %.

    Returns
    -------
    Finding | None
        ``critical`` when at least two steps of the SYN ladder (1, 3, 7, 15 s) match, else
        ``warning``. Evidence: ``modes`` (frame: source, mode_s, lower_s, upper_s, count, share,
        timer, timer_s), ``matched`` (count), ``syn_ladder_steps``.
    """
    from kit.analyses.latency import latency_modes

    frames: list[pl.DataFrame] = []
    sources: list[tuple[str, pl.DataFrame, str]] = []
    if capture is not None:
        sources.append(("capture", capture.dns, "latency_s"))
    if coredns is not None:
        sources.append(("coredns log", coredns.queries, "duration_s"))
    if unbound is not None:
        sources.append(("unbound log", unbound.queries, "duration_s"))
    for name, df, col in sources:
        modes = latency_modes(df, value=col, min_s=min_s, min_count=min_count)
        if not modes.is_empty():
            frames.append(_match_timers(modes, tolerance).with_columns(source=pl.lit(name)))
    if not frames:
        return None
    allm = pl.concat(frames).select(
        "source", "mode_s", "lower_s", "upper_s", "count", "share", "timer", "timer_s"
    )
    matched = allm.filter(pl.col("timer").is_not_null())
    if matched.is_empty():
        return None
    ladder = sorted(
        set(matched.filter(pl.col("timer_s").is_in([1.0, 3.0, 7.0, 15.0]))["timer_s"].to_list())
    )
    shown = ", ".join(f"{t:g}" for t in sorted(set(matched["timer_s"].to_list()))) + " s"
    if len(ladder) >= 2:
        meaning = (
            "Peaks at 1 s, 3 s, 7 s are the TCP SYN retransmission ladder: the answer came only "
            "after one, two or three SYNs towards the upstream were lost."
        )
    else:
        meaning = "Each matched peak is the value of the timer named in the evidence."
    confirm_parts = []
    if capture is not None:
        confirm_parts += [
            f"tshark -r {_quote(p)} -Y 'dns.flags.response==1 && dns.time >= {min_s:g}' "
            "-T fields -e dns.time | cut -c1-3 | sort -n | uniq -c"
            for p in _capture_paths(capture)
        ]
    for obj, cmd in (
        # CoreDNS query lines end in the duration with its unit (e.g. 1.002s); unbound reply
        # lines carry it third from the end (rcode, seconds, cached flag, size)
        (
            coredns,
            "grep -oE ' [0-9.]+s$' {file} | tr -d ' s' | awk '$1 >= "
            + f"{min_s:g}"
            + ' {{printf "%.1f\\n", $1}}\' | sort -n | uniq -c',
        ),
        (
            unbound,
            "awk 'NF >= 11 && $(NF-2) >= "
            + f"{min_s:g}"
            + ' {{printf "%.1f\\n", $(NF-2)}}\' {file} | sort -n | uniq -c',
        ),
    ):
        if obj is not None and "source" in obj.queries.columns:
            for f in obj.queries["source"].drop_nulls().unique().sort().to_list():
                confirm_parts.append(cmd.format(file=_quote(f)))
    return Finding(
        id="latency-timer-modes",
        title=f"Slow latencies pile up at timer values ({shown})",
        severity="critical" if len(ladder) >= 2 else "warning",
        explanation=(
            f"Latencies of at least {min_s:g} s are not spread out: they form peaks at the values "
            f"of known timers ({shown}; see the modes in the evidence). {meaning} A latency that equals a timer points at the "
            "mechanism that waited; check the finding that names it (SYN retransmissions, "
            "upstream timeouts, resolver retries)."
        ),
        evidence={"matched": matched.height, "syn_ladder_steps": len(ladder), "modes": allm},
        confirm=" ; ".join(confirm_parts),
    )


def _histograms(metrics: pl.DataFrame) -> list[str]:
    names = metrics.filter(pl.col("metric").str.ends_with("_bucket"))["metric"].unique().sort()
    return [n[: -len("_bucket")] for n in names.to_list() if n]


def _label_cols(metrics: pl.DataFrame, metric: str) -> list[str]:
    sub = metrics.filter(pl.col("metric") == metric)
    skip = {"ts", "metric", "value", "source", "le"}
    return [
        c
        for c in sub.columns
        if c not in skip and sub.schema[c] == pl.String and sub[c].drop_nulls().n_unique() > 1
    ]


def auto_window_step(metrics: pl.DataFrame, *, max_points: int = 400) -> tuple[str, str]:
    """A rate window and an evaluation step that suit the metrics' scrape interval and span.

    Window: 4 scrape intervals (the median gap between a series' samples), at least 30 s; step:
    the scrape interval, widened so that at most ``max_points`` steps cover the span. Both as
    whole seconds (``"60s"``).
    """
    buckets = metrics.filter(pl.col("metric").str.ends_with("_bucket"))
    if buckets.height < 2:
        return "30s", "5s"
    labels = [c for c in buckets.columns if c not in ("ts", "value", "source")]
    gaps = (
        buckets.sort("ts")
        .select(pl.col("ts").diff().over(labels).dt.total_milliseconds())
        .to_series()
        .drop_nulls()
    )
    interval_s = max(1.0, float(gaps.median() or 5000) / 1000)  # type: ignore[arg-type]
    span_s = (buckets["ts"].max() - buckets["ts"].min()).total_seconds()  # type: ignore[operator,union-attr]
    window = max(30, round(4 * interval_s))
    step = max(round(interval_s), int(span_s // max_points) + 1)
    return f"{window}s", f"{step}s"


def _server_quantiles(
    metrics: pl.DataFrame, *, q: float = 0.99, window: str | None = None, step: str | None = None
) -> pl.DataFrame:
    """p<q> over time of every latency histogram in ``metrics`` (one series per varying label).

    ``window``/``step`` default to :func:`auto_window_step`.
    """
    from kit.promql import quantile_series

    auto_w, auto_s = auto_window_step(metrics)
    window, step = window or auto_w, step or auto_s
    out = []
    for name in _histograms(metrics):
        by = _label_cols(metrics, name + "_bucket")
        qs = quantile_series(metrics, name, quantiles=[q], by=by, window=window, step=step).filter(
            pl.col("value").is_not_nan() & pl.col("value").is_finite()
        )
        if qs.is_empty():
            continue
        series = (
            pl.concat_str([pl.lit(f"{c}=") + pl.col(c).fill_null("") for c in by], separator=",")
            if by
            else pl.lit("")
        )
        out.append(
            qs.select(
                "ts",
                pl.lit(name).alias("metric"),
                series.alias("series"),
                "value",
                "bucket_lower",
                "bucket_upper",
                "at_ceiling",
            )
        )
    if not out:
        return pl.DataFrame(
            schema={
                "ts": _UTC,
                "metric": pl.String,
                "series": pl.String,
                "value": pl.Float64,
                "bucket_lower": pl.Float64,
                "bucket_upper": pl.Float64,
                "at_ceiling": pl.Boolean,
            }
        )
    return pl.concat(out)


def check_bucket_ceiling(
    metrics: pl.DataFrame | None,
    *,
    quantile: float = 0.99,
    window: str | None = None,
    step: str | None = None,
    min_points: int = 1,
    histograms: Sequence[str] | None = None,
) -> Finding | None:
    """Fires when a histogram quantile is pinned at the last finite bucket bound.

    Parameters
    ----------
    metrics
        A ``kit.read_metrics`` frame with ``<name>_bucket`` series (CoreDNS
        ``coredns_dns_request_duration_seconds``, unbound exporter...).
    quantile
        The quantile to compute (0.99).
    window, step
        Rate window and evaluation step (PromQL durations); default: :func:`auto_window_step`.
    min_points
        Fewest pinned evaluation points to fire.
    histograms
        Only these histograms (names without ``_bucket``); default: every ``*_bucket`` metric.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``ceiling_s`` (the bound), ``pinned_points``, ``points``,
        ``pinned`` (frame: metric, series, first, last, points, ceiling_s).
    """
    if metrics is None or metrics.is_empty() or "le" not in metrics.columns:
        return None
    if histograms is not None:
        names = [f"{h}_bucket" for h in histograms]
        metrics = metrics.filter(pl.col("metric").is_in(names))
    qs = _server_quantiles(metrics, q=quantile, window=window, step=step)
    pinned = qs.filter(pl.col("at_ceiling"))
    if pinned.height < min_points:
        return None
    summary = (
        pinned.group_by("metric", "series")
        .agg(
            first=pl.col("ts").min(),
            last=pl.col("ts").max(),
            points=pl.len().cast(pl.UInt32),
            ceiling_s=pl.col("bucket_lower").max(),
        )
        .sort("metric", "series")
    )
    top = summary.sort(["ceiling_s", "points"], descending=True).row(0, named=True)
    ceiling, metric = float(top["ceiling_s"]), str(top["metric"])
    pct = f"p{quantile * 100:g}"
    return Finding(
        id="bucket-ceiling",
        title=f"{pct} pinned at the {ceiling:g} s bucket ceiling of {metric}",
        severity="warning",
        explanation=(
            f"At {pinned.height} of {qs.height} evaluation points a {pct} fell beyond the last "
            f"finite bucket of its histogram ({summary.height} series; {metric}: {ceiling:g} s). The histogram cannot say how slow "
            f"those requests were: a flat line at {ceiling:g} s means 'at least {ceiling:g} s'. "
            "Take the real latency from a capture or the query log (dns.time, duration)."
        ),
        evidence={
            "ceiling_s": ceiling,
            "pinned_points": pinned.height,
            "points": qs.height,
            "pinned": summary,
        },
        confirm=(
            f"histogram_quantile({quantile:g}, sum by (le) (rate({metric}_bucket[5m]))) "
            f'== {ceiling:g}  # and compare {metric}_bucket{{le="+Inf"}} with '
            f'{metric}_bucket{{le="{ceiling:g}"}}'
        ),
    )


def check_metrics_blind_spot(
    capture: Any,
    metrics: pl.DataFrame | None,
    *,
    upstreams: Sequence[str] | None = None,
    quantile: float = 0.99,
    ratio: float = 2.0,
    min_gap_s: float = 0.5,
    window: str | None = None,
    step: str | None = None,
) -> Finding | None:
    """Fires when the client-side quantile (capture) is far above the server-side one (metrics).

    The client side is every capture transaction not sent to an upstream (``upstreams``, or
    :func:`infer_upstreams`); the server side is the largest ``quantile`` over time of the
    metrics' latency histograms. Fires when client > ``ratio`` x server and client - server >
    ``min_gap_s`` seconds.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``client_quantile_s``, ``server_quantile_s``, ``ratio``,
        ``server_metric``, ``client`` (frame: quantiles per capture and server).
    """
    from kit.stats import latency_quantiles

    if capture is None or metrics is None or capture.dns.is_empty() or "le" not in metrics.columns:
        return None
    ups = addresses(upstreams) if upstreams else infer_upstreams(capture)
    client = capture.dns.filter(~pl.col("server_ip").is_in(ups))
    if client.is_empty():
        return None
    # unanswered, uncensored queries waited at least until the end: count them as very slow
    vals = client.with_columns(
        lat=pl.when(pl.col("answered"))
        .then(pl.col("latency_s"))
        .when(~pl.col("censored"))
        .then(pl.lit(float("inf")))
    )
    qname = f"p{quantile * 100:g}_s"
    cq = latency_quantiles(
        vals.filter(pl.col("lat").is_not_null()), value="lat", quantiles=[quantile]
    )
    client_q = float(cq[qname][0])
    srv = _server_quantiles(metrics, q=quantile, window=window, step=step)
    if srv.is_empty():
        return None
    top = srv.sort("value", descending=True).row(0, named=True)
    server_q = float(top["value"])
    if not (client_q > ratio * server_q and client_q - server_q > min_gap_s):
        return None
    per = latency_quantiles(
        vals.filter(pl.col("lat").is_not_null()),
        value="lat",
        by=["capture", "server_ip"],
        quantiles=[0.5, 0.9, quantile],
    )
    pct = f"p{quantile * 100:g}"
    return Finding(
        id="metrics-blind-spot",
        title=f"Metrics blind spot: client {pct} {client_q:.3g} s vs server {pct} {server_q:.3g} s",
        severity="warning",
        explanation=(
            f"Clients in the capture waited {client_q:.3g} s at the {pct}, but the server-side "
            f"{pct} from {top['metric']} never exceeded {server_q:.3g} s. The metrics do not see "
            "the wait: it happens before the server measures (dropped or retried packets, "
            "conntrack, a queue in front of it) or outside the histogram's buckets. Trust the "
            "capture for what clients experience, and find where the time goes between client "
            "and server."
        ),
        evidence={
            "client_quantile_s": client_q,
            "server_quantile_s": server_q,
            "ratio": client_q / server_q if server_q > 0 else float("inf"),
            "server_metric": f"{top['metric']} {top['series']}",
            "client": per,
        },
        confirm=(
            f"histogram_quantile({quantile:g}, sum by (le) (rate({top['metric']}_bucket[5m]))) ; "
            + " ; ".join(
                f"tshark -r {_quote(p)} -Y 'dns.flags.response==1' -T fields -e dns.time | sort -n "
                "| awk '{a[NR]=$1} END {print a[int(NR*0.99)]}'"
                for p in _capture_paths(capture)
            )
        ),
    )
