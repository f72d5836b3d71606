"""Checks on latency distributions: timer modes, histogram bucket ceilings, metrics blind spots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analyses.latency import match_timers
from kit.findings._util import _capture_paths, _quote, infer_upstreams
from kit.findings.model import (
    KNOWN_TIMERS,
    UDP_RETRY_TIMERS,
    CheckResult,
    Finding,
    fired,
    is_tcp_timer,
    not_checked,
    not_fired,
)
from kit.net import addresses
from kit.timeutil import UTC as _UTC

if TYPE_CHECKING:
    pass


def _timers(tcp_seen: bool | None) -> list[tuple[str, float]]:
    """The timers to label modes with: :data:`KNOWN_TIMERS`; without TCP (``tcp_seen`` False),
    the SYN backoff ladder is replaced by the caches' UDP retry timers (:data:`UDP_RETRY_TIMERS`)."""
    if tcp_seen is False:
        return [t for t in KNOWN_TIMERS if not is_tcp_timer(t[0])] + list(UDP_RETRY_TIMERS)
    return list(KNOWN_TIMERS)


def _match_timers(
    modes: pl.DataFrame, tolerance: float, tcp_seen: bool | None = None
) -> pl.DataFrame:
    """``modes`` plus the matching timer of :func:`_timers` (``timer``, ``timer_s``; null if none)."""
    known = _timers(tcp_seen)
    timers = pl.DataFrame(
        {"timer": [n for n, _ in known], "timer_s": [v for _, v in known]},
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
    tcp_seen: bool | None = None,
) -> Finding | None:
    """The finding of :func:`latency_modes_result` (``None`` when it did not fire)."""
    return latency_modes_result(
        capture=capture,
        coredns=coredns,
        unbound=unbound,
        min_s=min_s,
        min_count=min_count,
        tolerance=tolerance,
        tcp_seen=tcp_seen,
    ).finding


def latency_modes_result(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    min_s: float = 0.5,
    min_count: int = 5,
    tolerance: float = 0.12,
    tcp_seen: bool | None = None,
) -> CheckResult:
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
    tcp_seen
        Whether the cache talked TCP to its upstream (the capture's port-53 TCP connections, or a
        forced-TCP setting). ``False``: the modes are labelled with the caches' UDP retry
        timers (:data:`UDP_RETRY_TIMERS`), never with the TCP SYN backoff; ``None`` (unknown)
        or ``True``: :data:`KNOWN_TIMERS`.

    Returns
    -------
    CheckResult
        ``numbers``: ``sources``, ``modes``, ``matched``, ``transport`` (``tcp``, ``udp`` or
        ``unknown``: which timers labelled the modes). The finding: ``critical`` when at least two steps of the SYN ladder (1, 3, 7, 15 s) match, else
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
            frames.append(
                _match_timers(modes, tolerance, tcp_seen).with_columns(source=pl.lit(name))
            )
    check = "latency-timer-modes"
    transport = {None: "unknown", True: "tcp", False: "udp"}[tcp_seen]
    if not sources:
        return not_checked(check, "no capture or query log given")
    nums: dict[str, Any] = {
        "sources": ", ".join(n for n, _, _ in sources),
        "modes": 0,
        "matched": 0,
        "transport": transport,
    }
    if not frames:
        return not_fired(check, f"no pile of at least {min_count} latencies ≥ {min_s:g} s", **nums)
    allm = pl.concat(frames).select(
        "source", "mode_s", "lower_s", "upper_s", "count", "share", "timer", "timer_s"
    )
    matched = allm.filter(pl.col("timer").is_not_null())
    nums.update(modes=allm.height, matched=matched.height)
    if matched.is_empty():
        at = ", ".join(f"{m:.3g}" for m in sorted(set(allm["mode_s"].round(2).to_list())))
        return not_fired(check, f"latency modes at {at} s match no known timer", **nums)
    ladder = sorted(
        set(matched.filter(pl.col("timer_s").is_in([1.0, 3.0, 7.0, 15.0]))["timer_s"].to_list())
    )
    shown = ", ".join(f"{t:g}" for t in sorted(set(matched["timer_s"].to_list()))) + " s"
    if len(ladder) >= 2:
        meaning = (
            "Peaks at 1 s, 3 s, 7 s are the TCP SYN retransmission ladder: the answer came only "
            "after one, two or three SYNs towards the upstream were lost."
        )
    elif tcp_seen is False:
        meaning = (
            "The capture holds no TCP towards the upstream, so these are not SYN retransmissions: "
            "each matched peak is a UDP retry timer (named in the evidence) of the cache waiting "
            "for an upstream that did not answer."
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
    f = Finding(
        id="latency-timer-modes",
        title=f"Slow latencies pile up at timer values ({shown})",
        severity="critical" if len(ladder) >= 2 else "warning",
        explanation=(
            f"Latencies of at least {min_s:g} s are not spread out: they form peaks at the values "
            f"of known timers ({shown}; see the modes in the evidence). {meaning} A latency that equals a timer points at the "
            "mechanism that waited; check the finding that names it (SYN retransmissions, "
            "upstream timeouts, resolver retries)."
        ),
        evidence={
            "matched": matched.height,
            "syn_ladder_steps": len(ladder),
            "transport": transport,
            "modes": allm,
        },
        confirm=" ; ".join(confirm_parts),
    )
    return fired(f, **nums)


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
    """The finding of :func:`bucket_ceiling_result` (``None`` when it did not fire)."""
    return bucket_ceiling_result(
        metrics,
        quantile=quantile,
        window=window,
        step=step,
        min_points=min_points,
        histograms=histograms,
    ).finding


COREDNS_BUCKETS: tuple[float, ...] = tuple(0.00025 * 2**i for i in range(16))
"""CoreDNS's ``plugin.TimeBuckets`` (ExponentialBuckets(0.00025, 2, 16)): 0.25 ms ... 8.192 s."""


def bucket_layout(metrics: pl.DataFrame, name: str) -> tuple[list[float], str]:
    """The finite ``le`` bounds of histogram ``name`` in an export, and what layout they are.

    Returns
    -------
    tuple[list[float], str]
        Ascending finite bounds (seconds; empty when the export has no ``<name>_bucket`` series
        with an ``le`` label, e.g. a native histogram), and ``"coredns"`` (CoreDNS's
        :data:`COREDNS_BUCKETS`, last 8.192 s), ``"custom"`` or ``"none"``.
    """
    if "le" not in metrics.columns:
        return [], "none"
    les = metrics.filter(pl.col("metric") == f"{name}_bucket")["le"].drop_nulls().unique()
    bounds: list[float] = []
    for le in les.to_list():
        try:
            v = float(le)
        except (TypeError, ValueError):
            continue
        if v != float("inf"):
            bounds.append(v)
    bounds.sort()
    if not bounds:
        return [], "none"
    if len(bounds) == len(COREDNS_BUCKETS) and all(
        abs(a - b) <= 1e-9 * max(1.0, b) for a, b in zip(bounds, COREDNS_BUCKETS, strict=True)
    ):
        return bounds, "coredns"
    return bounds, "custom"


def bucket_ceiling_result(
    metrics: pl.DataFrame | None,
    *,
    quantile: float = 0.99,
    window: str | None = None,
    step: str | None = None,
    min_points: int = 1,
    histograms: Sequence[str] | None = None,
) -> CheckResult:
    """Fires when a histogram quantile is pinned at the last finite bucket bound.

    The export's bucket layout is read first (:func:`bucket_layout`): a histogram without
    classic ``le`` buckets (a native histogram) has no ceiling and is not checked; the ceiling
    is the layout's own last finite bound (8.192 s for CoreDNS's default buckets, whatever a
    custom layout has), never an assumed 8.192 s.

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
    CheckResult
        ``numbers``: ``histograms``, ``layouts`` (name: ``coredns``/``custom``, last finite
        bound), ``points``, ``pinned_points``. The finding (``warning``): evidence
        ``ceiling_s`` (the bound), ``layout``, ``pinned_points``, ``points``, ``pinned`` (frame:
        metric, series, first, last, points, ceiling_s).
    """
    check = "bucket-ceiling"
    if metrics is None:
        return not_checked(check, "no metric export given")
    if metrics.is_empty() or "le" not in metrics.columns:
        return not_checked(
            check, "the metric export has no classic histogram buckets (le): no bucket ceiling"
        )
    if histograms is not None:
        names = [f"{h}_bucket" for h in histograms]
        metrics = metrics.filter(pl.col("metric").is_in(names))
    layouts = {h: bucket_layout(metrics, h) for h in _histograms(metrics)}
    layouts = {h: v for h, v in layouts.items() if v[0]}
    if not layouts:
        return not_checked(check, "no histogram with finite le buckets in the export")
    shown = "; ".join(f"{h}: {k}, last finite {b[-1]:g} s" for h, (b, k) in layouts.items())
    nums: dict[str, Any] = {"histograms": len(layouts), "layouts": shown}
    qs = _server_quantiles(metrics, q=quantile, window=window, step=step)
    pinned = qs.filter(pl.col("at_ceiling"))
    nums.update(points=qs.height, pinned_points=pinned.height)
    if pinned.height < min_points:
        return not_fired(
            check,
            f"p{quantile * 100:g} at the last finite bucket at {pinned.height} of {qs.height} "
            f"points ({shown})",
            **nums,
        )
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
    kind = layouts.get(metric, ([], "custom"))[1]
    layout = (
        "CoreDNS's default buckets (0.25 ms to 8.192 s)"
        if kind == "coredns"
        else f"custom buckets, last finite {ceiling:g} s"
    )
    f = Finding(
        id="bucket-ceiling",
        title=f"{pct} pinned at the {ceiling:g} s bucket ceiling of {metric}",
        severity="warning",
        explanation=(
            f"At {pinned.height} of {qs.height} evaluation points a {pct} fell beyond the last "
            f"finite bucket of its histogram ({summary.height} series; {metric}: {ceiling:g} s). The histogram cannot say how slow "
            f"those requests were: a flat line at {ceiling:g} s means 'at least {ceiling:g} s'. "
            f"Take the real latency from a capture or the query log (dns.time, duration). "
            f"Layout: {layout}."
        ),
        evidence={
            "ceiling_s": ceiling,
            "layout": layout,
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
    return fired(f, **nums)


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
    """The finding of :func:`metrics_blind_spot_result` (``None`` when it did not fire)."""
    return metrics_blind_spot_result(
        capture,
        metrics,
        upstreams=upstreams,
        quantile=quantile,
        ratio=ratio,
        min_gap_s=min_gap_s,
        window=window,
        step=step,
    ).finding


def metrics_blind_spot_result(
    capture: Any,
    metrics: pl.DataFrame | None,
    *,
    upstreams: Sequence[str] | None = None,
    quantile: float = 0.99,
    ratio: float = 2.0,
    min_gap_s: float = 0.5,
    window: str | None = None,
    step: str | None = None,
) -> CheckResult:
    """Fires when the client-side quantile (capture) is far above the server-side one (metrics).

    The client side is every capture transaction not sent to an upstream (``upstreams``, or
    :func:`infer_upstreams`); the server side is the largest ``quantile`` over time of the
    metrics' latency histograms. Fires when client > ``ratio`` x server and client - server >
    ``min_gap_s`` seconds.

    The export's CoreDNS metric names are read too (:func:`metric_renames`): a latency metric
    named by another CoreDNS version than the export's (``coredns_forward_*`` before 1.11,
    ``coredns_proxy_*`` since) is named in the evidence, since a dashboard or alert on the other
    name sees nothing.

    Returns
    -------
    CheckResult
        ``numbers``: ``client_quantile_s``, ``server_quantile_s`` (when both exist), ``renames``.
        The finding (``warning``): evidence ``client_quantile_s``, ``server_quantile_s``,
        ``ratio``, ``server_metric``, ``renames`` (text, may be empty), ``client`` (frame:
        quantiles per capture and server).
    """
    from kit.stats import latency_quantiles

    check = "metrics-blind-spot"
    if capture is None or metrics is None:
        return not_checked(
            check,
            "needs a capture and a metric export: "
            + ("no capture" if capture is None else "no metric export"),
        )
    renames = metric_renames(metrics)
    if capture.dns.is_empty():
        return not_checked(check, "the capture holds no DNS transaction", renames=renames)
    if "le" not in metrics.columns:
        return not_checked(
            check, "the metric export has no latency histogram (le buckets)", renames=renames
        )
    ups = addresses(upstreams) if upstreams else infer_upstreams(capture)
    client = capture.dns.filter(~pl.col("server_ip").is_in(ups))
    if client.is_empty():
        return not_fired(check, "no client transaction in the capture", renames=renames)
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
        return not_checked(
            check, "no server-side quantile could be computed from the export", renames=renames
        )
    top = srv.sort("value", descending=True).row(0, named=True)
    server_q = float(top["value"])
    nums = {"client_quantile_s": client_q, "server_quantile_s": server_q, "renames": renames}
    if not (client_q > ratio * server_q and client_q - server_q > min_gap_s):
        return not_fired(
            check,
            f"client p{quantile * 100:g} {client_q:.3g} s vs server {server_q:.3g} s: not above "
            f"{ratio:g}x and {min_gap_s:g} s more",
            **nums,
        )
    per = latency_quantiles(
        vals.filter(pl.col("lat").is_not_null()),
        value="lat",
        by=["capture", "server_ip"],
        quantiles=[0.5, 0.9, quantile],
    )
    pct = f"p{quantile * 100:g}"
    f = Finding(
        id="metrics-blind-spot",
        title=f"Metrics blind spot: client {pct} {client_q:.3g} s vs server {pct} {server_q:.3g} s",
        severity="warning",
        explanation=(
            f"Clients in the capture waited {client_q:.3g} s at the {pct}, but the server-side "
            f"{pct} from {top['metric']} never exceeded {server_q:.3g} s. The metrics do not see "
            "the wait: it happens before the server measures (dropped or retried packets, "
            "conntrack, a queue in front of it) or outside the histogram's buckets. Trust the "
            "capture for what clients experience, and find where the time goes between client "
            "and server." + (f" {renames}" if renames else "")
        ),
        evidence={
            "client_quantile_s": client_q,
            "server_quantile_s": server_q,
            "ratio": client_q / server_q if server_q > 0 else float("inf"),
            "server_metric": f"{top['metric']} {top['series']}",
            "renames": renames,
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
    return fired(f, **nums)


COREDNS_RENAMES: tuple[tuple[str, str, str], ...] = (
    # (name an older CoreDNS exposes, its name since, the version that renamed it)
    (
        "coredns_forward_request_duration_seconds",
        "coredns_proxy_request_duration_seconds",
        "1.11.0",
    ),
    ("coredns_forward_requests_total", "coredns_proxy_request_duration_seconds_count", "1.11.0"),
    ("coredns_forward_responses_total", "coredns_proxy_request_duration_seconds_count", "1.11.0"),
    (
        "coredns_forward_healthcheck_failures_total",
        "coredns_proxy_healthcheck_failures_total",
        "1.11.0",
    ),
    ("coredns_dns_request_count_total", "coredns_dns_requests_total", "1.7.0"),
    ("coredns_dns_response_rcode_count_total", "coredns_dns_responses_total", "1.7.0"),
    ("coredns_forward_request_count_total", "coredns_forward_requests_total", "1.7.0"),
    ("coredns_cache_size", "coredns_cache_entries", "1.7.0"),
)
"""CoreDNS metric renames by version (../shared/notes/formats.md sections 4.2-4.3: 1.7.0 dropped
``count`` from ``_total`` names; 1.11.0 moved the per-upstream forward metrics to
``coredns_proxy_*{proxy_name="forward"}``)."""


def metric_renames(metrics: pl.DataFrame | None) -> str:
    """Which CoreDNS metric names of the export belong to one side of a version rename.

    For each rename of :data:`COREDNS_RENAMES` where the export has one name (any of its
    ``_bucket``/``_count``/``_sum`` series) and not the other, one sentence: a dashboard or alert
    written for the other CoreDNS version queries a name this export does not have. The name
    ``coredns_proxy_request_duration_seconds`` is told apart by its labels
    (../shared/notes/formats.md 4.3): with ``proxy_name`` it is the forward plugin of CoreDNS ≥
    1.11.0; without (``proxy_proto``, ``family``) it is the old ``proxy`` plugin of CoreDNS ≤
    1.4.0, which has no forward metrics at all. Empty when no CoreDNS metric of a rename is
    present.
    """
    if metrics is None or metrics.is_empty() or "metric" not in metrics.columns:
        return ""
    names = {n for n in metrics["metric"].unique().to_list() if n}

    def has(name: str) -> bool:
        return any(n == name or n.startswith(name + "_") for n in names)

    old_proxy = False
    if has("coredns_proxy_request_duration_seconds") or has("coredns_proxy_request_count_total"):
        proxy = metrics.filter(pl.col("metric").str.starts_with("coredns_proxy_request"))
        old_proxy = not (
            "proxy_name" in proxy.columns and proxy["proxy_name"].drop_nulls().len() > 0
        )
    parts = []
    if old_proxy:
        parts.append(
            "The export has coredns_proxy_request_* without a proxy_name label: the old proxy "
            "plugin of CoreDNS ≤ 1.4.0, not the forward plugin; a query or alert on "
            'coredns_forward_* or on coredns_proxy_*{proxy_name="forward"} sees nothing here.'
        )
    for old, new, version in COREDNS_RENAMES:
        if old_proxy and new.startswith("coredns_proxy_"):
            continue
        if has(new) and not has(old):
            parts.append(
                f"The export has {new} (CoreDNS ≥ {version}) and no {old}: a query or alert on "
                f"{old} sees nothing here."
            )
        elif has(old) and not has(new):
            parts.append(
                f"The export has {old} (CoreDNS < {version}) and no {new}: a query or alert on "
                f"{new} sees nothing here."
            )
    return " ".join(dict.fromkeys(parts))
