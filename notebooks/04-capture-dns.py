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
# # 04 · What did the clients actually wait? (capture, client side)
#
# Metrics and logs say what the resolver *thinks* it did; a packet capture on the node says what
# the pods *waited*. This notebook takes every query a pod sent to the node-local cache
# (NodeLocal DNSCache at `169.254.20.10` in Kubernetes) and the answer it got, from tcpdump files
# of one or more nodes (the `capture` column tells them apart: compare an affected node with a
# healthy one side by side).
#
# What to look for:
#
# - a latency distribution with a **second hump in seconds** next to the usual sub-millisecond
#   cache hits and millisecond misses;
# - answers piling up at **fixed values** (1 s, 3 s, 7 s): a timer, not load (notebook 05);
# - **unanswered** queries (the client gave up) versus **censored** ones (the capture ended first);
# - whether clients used UDP or TCP (`transport`) and got truncated answers (`truncated`).

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
capture: list[str] = []  # pcap/pcapng files or folders from the nodes; []: from artefacts
run_json: list[str] | None = None  # lab run.json with change/fix times; None: from artefacts
change_time: str | None = None  # when the change happened (ISO 8601 UTC); overrides run_json
fix_time: str | None = None  # when it was fixed (ISO 8601 UTC); overrides run_json
cache_ip: list[str] | None = None  # node-local cache address(es); None: inferred from capture
slow_threshold_s: float = 1.0  # a query slower than this is slow, in seconds
every: str = "5s"  # time bin for the over-time chart (polars duration: 1s, 5s, 1m)
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end
k8s_snapshot: list[str] | None = None  # kubectl get pods -A -o json; None: from artefacts

# %%
import polars as pl

import kit
import kit.analyses.upstream
import kit.charts
import kit.report
import kit.sources.artefacts
import kit.sources.capture
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
    artefacts, required=["capture"], capture=capture, run_json=run_json
)
capture, run_json = sources.values("capture", "run_json")
sources

# %%
cap = kit.sources.timeline.restrict(
    kit.read_capture(capture, progress=False), start=window_start, end=window_end
)
tl = kit.sources.timeline.timeline(change_time=change_time, fix_time=fix_time, run_json=run_json)
kit.sources.artefacts.check_span(tl, cap)
cap.meta.select(
    "capture",
    "packets",
    "first_ts",
    "last_ts",
    "dns_queries",
    "dns_responses",
    "truncated",
    "notes",
)

# %% [markdown]
# ## Who is the cache?
#
# An upstream is a server that receives **forwarded** queries: the same name and type asked by
# another sender shortly after a query to another server, before that one answered (the rule of
# `kit.analyses.upstream.infer_upstream_ips`, the same in `05-upstream-tcp` and `06-findings`). The cache is
# the server asked by the most distinct clients among the others. Override with `cache_ip` when the
# guess is wrong (e.g. a capture on the upstream side only); `basis` says where each role comes from.

# %%
roles = kit.analyses.upstream.server_roles(cap.dns, tcp=cap.tcp, cache_ips=cache_ip)
caches = kit.analyses.upstream.infer_cache_ips(cap.dns, cache_ip, tcp=cap.tcp)
client = kit.sources.timeline.with_phase(kit.analyses.upstream.client_queries(cap.dns, caches), tl)
del cap  # the rest reads the client side only: free the capture's frames (GBs on a busy node)
roles

# %% [markdown]
# ## Outcomes per capture and transport
#
# `queries` = `answered` + `unanswered` + `censored`. `slow` counts answers at or above the slow
# threshold; `p50_s`…`max_s` are in seconds. A healthy node-local cache answers in milliseconds:
# a p90 or p99 in seconds on one node only points at that node's path to the upstream.

# %%
kit.analyses.upstream.outcomes(client, by=["capture", "transport"], slow_s=slow_threshold_s)

# %% [markdown]
# The same per phase of the run (before the change, during the incident, after the fix): the
# slow answers should appear with the change and disappear with the fix.

# %%
kit.analyses.upstream.outcomes(client, by=["capture", "phase"], slow_s=slow_threshold_s)

# %% [markdown]
# ## Latency distribution (log scale)
#
# Bins are log-spaced (10 per factor of ten), counted in polars; the y axis is compressed
# (symlog) so a few hundred slow answers stay visible next to thousands of fast ones. Dashes
# separate the phases of the run.

# %%
hist = kit.analyses.upstream.log_histogram(client, value="latency_s", by=["capture", "phase"])
kit.charts.latency_histogram_chart(hist, by=["capture"], dash="phase")

# %% [markdown]
# ## Slow or unanswered queries over time
#
# Dashed rules mark the change and the fix. Slow answers starting exactly at the change, on the
# changed node only, tie the latency to the change.

# %%
slow = kit.analyses.upstream.slow_over_time(
    client, slow_s=slow_threshold_s, every=every, by=["capture"]
)
kit.charts.slow_answers_chart(
    slow, by=["capture"], change_time=tl.change_time, fix_time=tl.fix_time
)

# %% [markdown]
# ## The slowest answers
#
# The 20 slowest client transactions (unanswered ones first: they waited longest). `frame_query`
# is the tshark frame number to open in Wireshark (`frame.number == N`); notebook 05 finds the
# upstream connection behind each one.

# %%
# the 20 rows without sorting all of them (an unanswered query's null latency counts as longest)
slowest_by = [pl.col("answered"), pl.col("latency_s").fill_null(float("inf"))]
client.select(
    "capture", "ts", "client_ip", "qname", "qtype", "transport", "latency_s", "answered",
    "censored", "rcode", "retransmissions", "frame_query", "phase"
).bottom_k(20, by=slowest_by, reverse=[False, True]).sort(
    slowest_by, descending=[False, True]
)  # fmt: skip

# %% [markdown]
# ## Unanswered and censored queries
#
# An unanswered query (no answer, and sent long enough before the end of the capture) is a
# failure the client saw as a timeout; a censored one simply had no time to be answered before the
# capture stopped. Empty tables are good news.

# %%
client.filter(~pl.col("answered")).group_by("capture", "censored", "phase").agg(
    queries=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max()
).sort("capture", "censored", "phase")

# %% [markdown]
# ## Which workloads make the slow / NXDOMAIN / unanswered queries?
#
# A pod snapshot (`kubectl get pods -A -o json`, the `k8s_snapshot` input) names the pod that held
# each client address at the time of each query (pod IPs are reused: creation and deletion times
# count), and its workload (Deployment, DaemonSet, CronJob...). One row per workload, the most
# hurt first (`slow` + `unanswered`); `*_share` is the workload's share of all such queries.
# Queries whose client cannot be named get a row per reason: `node_ip` (a node's address:
# hostNetwork pods or SNAT; capture on the pod's side to see them), `no_pod_at_that_time`,
# `unknown` (not in the snapshot). The rows add up to every client query.

# %%
import kit.analyses.workloads

k8s_snapshot = kit.sources.artefacts.resolve_inputs(artefacts, k8s_snapshot=k8s_snapshot)[
    "k8s_snapshot"
]
snapshot = kit.read_k8s_snapshot(k8s_snapshot) if k8s_snapshot else None
if snapshot is None:
    print(kit.analyses.workloads.NO_SNAPSHOT_HINT)
workloads = kit.analyses.workloads.workload_outcomes(client, snapshot, slow_s=slow_threshold_s)
kit.report.emit_workloads(
    workloads, vantage="client side of the capture", snapshot=snapshot is not None
)
kit.analyses.workloads.top_workloads(workloads, 15)

# %%
kit.charts.workload_harm_chart(workloads)

# %% [markdown]
# ## Where the slow answers pile up
#
# Peaks of the slow tail (`mode_s`, seconds). Peaks near 1, 3 and 7 s match the kernel's SYN
# retransmission timers (`matches`): the cache waited for TCP connections to the upstream.
# Notebook 05 checks this on the connections themselves.

# %%
modes = kit.analyses.upstream.latency_modes_by(client, value="latency_s", by=["capture"])
del client  # nothing below reads the client side: free it before the next notebook reads a capture
kit.analyses.upstream.match_ladder(modes)

# %% [markdown]
# **Next:** `05-upstream-tcp` looks at the connections from the cache to the upstream resolver:
# SYN retransmissions, handshake times, and the packet rate against the resolver's limit.
