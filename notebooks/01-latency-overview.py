# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Latency overview: where and when did latency rise?
#
# The alert said "p99 DNS latency is high". Before reading logs or packets, the metrics answer
# three questions: **which nodes** are slow (one node, or all of them?), **since when** (does the
# rise start at a change, such as a new NodeLocal DNSCache configuration?), and **how slow**
# (milliseconds, or whole seconds, which smell of timeouts and retransmissions).
#
# The quantiles come from the latency histogram in the metric export (CoreDNS
# `coredns_dns_request_duration_seconds`, unbound `unbound_response_time_seconds`): the kit
# computes `histogram_quantile` over its buckets the way a dashboard does, and shows the bucket
# ceiling, above which a quantile only means "at least this slow".

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
metrics: list[str] = []  # metric exports (Prometheus JSON, text, Grafana); []: from artefacts
run_json: list[str] | None = None  # lab run.json with the change time; None: from artefacts
change_time: str | None = None  # ISO-8601 time of the suspected change; overrides run.json
fix_time: str | None = None  # ISO-8601 time of the fix or rollback; overrides run.json
histogram: str | None = None  # latency histogram (no _bucket suffix); None: from the export
by: str | None = None  # label naming a node (node, instance, pod); None: from the export
matchers: str = ""  # PromQL label matchers selecting one deployment (job, namespace); empty: all
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end

# %%
import polars as pl

import kit
import kit.analyses.metrics
import kit.charts
import kit.report
import kit.sources.artefacts
import kit.sources.timeline

kit.report.setup_kernel()  # charts as static SVG (no network), tables as in the report

# %% [markdown]
# ## The inputs
#
# Every input is taken from the artefacts (each file recognised by its content, as `dnskit report`
# does), or from the sample data when no artefacts are given: `source` says which. Point the
# notebook at an incident with `artefacts` in the parameters cell (an input set there is kept).

# %%
sources = kit.sources.artefacts.resolve_inputs(
    artefacts, required=["metrics"], metrics=metrics, run_json=run_json
)
metrics, run_json = sources.values("metrics", "run_json")
sources

# %% [markdown]
# ## The timeline and the export

# %%
tl = kit.sources.timeline.timeline(change_time=change_time, fix_time=fix_time, run_json=run_json)
exports = kit.sources.timeline.restrict(
    kit.analyses.metrics.read_exports(metrics), start=window_start, end=window_end
)
metric = histogram or kit.analyses.metrics.latency_histogram_metric(exports)
keys = [by] if by else None
kit.sources.artefacts.check_span(tl, exports)
print(f"change: {tl.change_time}  fix: {tl.fix_time}  latency histogram: {metric}")
tl.phases

# %%
exports.group_by("metric").agg(
    series=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max()
).sort("metric")

# %% [markdown]
# Each row is one metric in the export. A metric named after its file (such as
# `p99_response_time_5s`) was exported as the answer of a query, not as a raw metric.
#
# ## p50, p90, p99 per node
#
# What to look for: a quantile that jumps at the change (dashed line) on one node and not on the
# others points at that node's configuration; all nodes rising together points upstream or at
# load. p99 in whole seconds (1 s, 3 s, 7 s...) is the signature of retransmission timers, not of
# a busy server.

# %%
quantiles = kit.analyses.metrics.latency_overview(exports, metric, by=keys, matchers=matchers)
ceiling = kit.analyses.metrics.highest_finite_bucket(exports, metric) if metric else None
node_cols = kit.analyses.metrics.label_columns(quantiles)
print(
    f"{quantiles.height} quantile points from {metric}; highest finite bucket: {ceiling} s; "
    f"export resolution: {kit.analyses.metrics.sample_interval_s(exports, f'{metric}_bucket')} s"
)

# %%
kit.charts.with_change_marker(
    kit.charts.latency_quantiles_chart(
        quantiles,
        by=node_cols,
        ceiling=kit.analyses.metrics.chart_ceiling(quantiles, ceiling),
        title=f"Latency quantiles from {metric}",
    ),
    tl.change_time,
    tl.fix_time,
) if quantiles.height else "No latency histogram in the export: see the exported quantiles below."

# %% [markdown]
# The last value of each quantile per node. When the export is a single scrape (a `/metrics`
# page), there is no rate and no curve: these are the quantiles of every request since the
# process started, the only figures a single scrape can give.

# %%
kit.analyses.metrics.last_quantiles(quantiles)

# %% [markdown]
# Note: a `query_range` export of raw buckets holds the counters resampled at the export's step,
# not the samples Prometheus scraped, so `rate()` over it (and the quantiles above) approximate
# what Prometheus computed: same level, not the same value at every point. Where the export also
# holds Prometheus's own quantile answers (`p90_...`, `p99_...`), they follow, for comparison.

# %%
exported = kit.analyses.metrics.exported_quantiles(exports)
exported_cols = kit.analyses.metrics.label_columns(exported)
kit.charts.with_change_marker(
    kit.charts.latency_quantiles_chart(
        exported, by=exported_cols, ceiling=None, title="Quantiles as exported by Prometheus"
    ),
    tl.change_time,
    tl.fix_time,
) if exported.height else "The export holds no ready-made quantile series (p90_..., p99_...)."

# %% [markdown]
# ## Before and after the change
#
# The p99 per node and phase, from the histogram (`mean`, `median`, `max` in seconds). A ratio of
# orders of magnitude between phases on one node, with the other nodes flat, localises the
# problem to what changed on that node.

# %%
p99 = quantiles.filter(pl.col("quantile") == 0.99)
kit.analyses.metrics.phase_summary(p99, tl, by=node_cols)

# %%
kit.charts.before_after_chart(
    p99,
    tl.change_time,
    by=node_cols,
    title="p99 latency before and after the change",
    y_title="p99 (s)",
    fix_time=tl.fix_time,
) if tl.change_time is not None and p99.height else "No change time given: no before/after chart."

# %% [markdown]
# ## Request rate
#
# A latency rise with a flat request rate is not caused by load. The rate here counts the
# requests the latency histogram observed (its `+Inf` bucket); for unbound that histogram only
# covers answers that needed the upstream (cache misses), for CoreDNS every request.

# %%
rate = kit.analyses.metrics.request_rate(exports, metric, by=keys, matchers=matchers)
kit.analyses.metrics.phase_summary(rate, tl, by=node_cols)

# %%
kit.charts.with_change_marker(
    kit.charts.rate_chart(
        rate, by=node_cols, title=f"Requests per second observed by {metric}", y_title="requests/s"
    ),
    tl.change_time,
    tl.fix_time,
) if rate.height else "No request rate: no latency histogram in the export."

# %% [markdown]
# ## What to check next
#
# - Which queries were slow, and is there a pattern by name, type or client: `02-query-logs`.
# - Did the resolver log upstream errors (timeouts) from the change on: `03-error-logs`.
# - What clients actually waited, and what happened on the wire to the upstream: `04-capture-dns`
#   and `05-upstream-tcp`.
