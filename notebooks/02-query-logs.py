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
# # 02 · Query logs: which queries were slow?
#
# A resolver that logs every query with its duration (CoreDNS's `log` plugin, unbound's
# `log-replies: yes`) tells which queries were slow. The question here is whether the slow ones
# share something: one query type (`AAAA` towards a broken upstream), one rcode (`SERVFAIL`), one
# client, one domain, one transport. If they share **nothing** but the time and the node, the
# cause is on the path every cache miss takes: the forwarding to the upstream resolver.
#
# The durations themselves are evidence too: slow queries piling up at 1 s, 3 s, 7 s... are TCP
# SYN retransmission timers (RFC 6298: initial RTO 1 s, doubling), not a slow server.

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
coredns_log: list[str] | None = None  # CoreDNS logs (log plugin); None: from artefacts
unbound_log: list[str] | None = None  # unbound logs with log-replies: yes; None: from artefacts
run_json: list[str] | None = None  # lab run.json with the change time; None: from artefacts
change_time: str | None = None  # ISO-8601 time of the suspected change; overrides run.json
fix_time: str | None = None  # ISO-8601 time of the fix or rollback; overrides run.json
slow_threshold_s: float = 1.0  # a query taking at least this long is slow, in seconds
every: str = "10s"  # time bin of the slow-query counts (10s, 1m; widened for long logs)
domain_labels: int = 2  # labels kept from the right of a name to group names into domains
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end
k8s_snapshot: list[str] | None = None  # kubectl get pods -A -o json; None: from artefacts

# %%
import polars as pl

import kit
import kit.analyses.latency
import kit.analyses.resolver_logs
import kit.analyses.workloads
import kit.charts
import kit.report
import kit.sources.artefacts
import kit.sources.coredns
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
    artefacts,
    coredns_log=coredns_log,
    unbound_log=unbound_log,
    run_json=run_json,
    k8s_snapshot=k8s_snapshot,
)
coredns_log, unbound_log, run_json, k8s_snapshot = sources.values(
    "coredns_log", "unbound_log", "run_json", "k8s_snapshot"
)
sources

# %% [markdown]
# ## The logs

# %%
tl = kit.sources.timeline.timeline(change_time=change_time, fix_time=fix_time, run_json=run_json)
core = kit.sources.timeline.restrict(
    kit.read_coredns_log(coredns_log) if coredns_log else None, start=window_start, end=window_end
)
unb = kit.sources.timeline.restrict(
    kit.read_unbound_log(unbound_log) if unbound_log else None, start=window_start, end=window_end
)
queries = kit.analyses.resolver_logs.with_domain(
    kit.analyses.resolver_logs.combined_queries(
        coredns=kit.sources.coredns.without_loop_probes(core) if core is not None else None,
        unbound=unb,
    ),
    labels=domain_labels,
)
kit.sources.artefacts.check_span(tl, queries)
queries.group_by("resolver", "source").agg(
    queries=pl.len(),
    slow=(pl.col("duration_s") >= slow_threshold_s).sum(),
    first=pl.col("ts").min(),
    last=pl.col("ts").max(),
).sort("resolver", "source")

# %% [markdown]
# One row per log file with its answered queries (CoreDNS's `loop` plugin self-tests, `HINFO`
# queries for random names, are left out: they are not client traffic). Lines that are not queries (start-up, errors)
# are in `03-error-logs`; lines the kit could not read are counted here:

# %%
pl.DataFrame(
    {
        "log": ["coredns", "unbound"],
        "rejected_lines": [
            core.rejected.height if core is not None else None,
            unb.rejected.height if unb is not None else None,
        ],
    }
)

# %% [markdown]
# ## Slow queries over time
#
# What to look for: slow queries starting at the change (dashed line) on one log file only.

# %%
print(kit.analyses.resolver_logs.change_note(tl, change_time=change_time))
print(kit.analyses.resolver_logs.timing_note(queries, "queries"))

# %%
bin_width = kit.analyses.resolver_logs.bin_every(
    queries["ts"], every
)  # coarser when the logs span days
slow_counts = kit.analyses.resolver_logs.slow_over_time(
    queries.filter(pl.col("ts").is_not_null()),  # the untimed ones are counted in the note above
    threshold_s=slow_threshold_s,
    every=bin_width,
    by=["source"],
)
kit.charts.count_chart(
    slow_counts,
    value="slow",
    by=["source"],
    change_time=tl.change_time,
    fix_time=tl.fix_time,
    title=f"Queries taking at least {slow_threshold_s:g} s, per {kit.analyses.resolver_logs.bin_label(bin_width)}",
    y_title=f"slow queries per {kit.analyses.resolver_logs.bin_label(bin_width)}",
) if slow_counts.height else print(
    "No query with a timestamp: nothing to count per time bin (see the note above)."
)

# %% [markdown]
# ## Is there a pattern?
#
# For each dimension, the bar is the group's share of the slow queries and the tick its share of
# all queries. A bar far longer than its tick (`lift` well above 1) is a pattern; bars matching
# their ticks mean slowness does not depend on that dimension. `cached` (unbound only) separates
# cache hits from answers that needed the upstream; `answered` false (CoreDNS only) marks queries
# logged without a response (`NOERROR - 0 6.01s`, or `- - 0` since CoreDNS 1.8.5): the forward
# gave up on the upstream and the client got nothing.

# %%
by_source = kit.analyses.resolver_logs.slow_by(queries, "source", threshold_s=slow_threshold_s)
by_source

# %%
by_qtype = kit.analyses.resolver_logs.slow_by(queries, "qtype", threshold_s=slow_threshold_s)
kit.charts.slow_by_chart(by_qtype, "qtype") if queries.height else by_qtype

# %%
kit.analyses.resolver_logs.slow_by(queries, "rcode", threshold_s=slow_threshold_s)

# %%
kit.analyses.resolver_logs.slow_by(
    queries, ["resolver", "proto", "cached", "answered"], threshold_s=slow_threshold_s
)

# %%
kit.analyses.resolver_logs.slow_by(queries, "client_ip", threshold_s=slow_threshold_s)

# %%
by_domain = kit.analyses.resolver_logs.slow_by(queries, "domain", threshold_s=slow_threshold_s)
kit.charts.slow_by_chart(by_domain, "domain") if queries.height else by_domain

# %% [markdown]
# Names queried once each (generated names, cache misses by design) cannot form a pattern on
# their own: their domain can. A single name with many slow queries would show here as its
# domain's bar, and in the list of the slowest queries below.
#
# ## Latency modes: do the slow queries pile up at fixed durations?

# %%
modes = kit.analyses.latency.latency_modes(queries, min_s=min(0.2, slow_threshold_s))
modes

# %%
kit.charts.duration_histogram_chart(
    kit.analyses.resolver_logs.duration_histogram(queries, by=["resolver"]),
    modes=modes,
    by=["resolver"],
    threshold_s=slow_threshold_s,
    title="How long the logged queries took (log scale)",
) if queries.height else print(
    "No query line in the logs given: nothing to show. CoreDNS logs queries only with the `log` "
    "plugin in its Corefile, unbound only with `log-replies: yes`."
)

# %% [markdown]
# Modes near 1 s, 3 s, 7 s (and 15 s, 31 s) are the TCP SYN retransmission ladder: the resolver
# opened a TCP connection to its upstream and the SYN (or SYN-ACK) was lost, again and again.
# A mode near 2 s or 5 s is rather a resolver's own retry timer. Confirm on the wire with
# `05-upstream-tcp`.
#
# ## The slowest queries

# %%
kit.sources.coredns.slow_queries(queries, slow_threshold_s).select(
    "ts",
    "resolver",
    "client_ip",
    "qname",
    "qtype",
    "rcode",
    "cached",
    "answered",
    "duration_s",
    "source",
    "line_no",
).head(20)

# %% [markdown]
# ## Which workloads make the slow / NXDOMAIN / unanswered queries?
#
# A pod snapshot (`kubectl get pods -A -o json`, the `k8s_snapshot` input) names the pod that held
# each logged client address at the time of the query (pod IPs are reused: creation and deletion
# times count), and its workload (Deployment, DaemonSet, CronJob...). One row per workload, the
# most hurt first (`slow` + `unanswered`: logged without a response); `*_share` is the workload's
# share of all such queries. Clients that cannot be named get a row per reason: `node_ip` (a
# node's address: hostNetwork pods, or SNAT before the resolver), `no_pod_at_that_time`,
# `unknown` (not in the snapshot). The rows add up to every logged query.

# %%
snapshot = kit.read_k8s_snapshot(k8s_snapshot) if k8s_snapshot else None
if snapshot is None:
    print(kit.analyses.workloads.NO_SNAPSHOT_HINT)
workloads = kit.analyses.workloads.workload_outcomes(queries, snapshot, slow_s=slow_threshold_s)
kit.report.emit_workloads(workloads, vantage="resolver logs", snapshot=snapshot is not None)
kit.analyses.workloads.top_workloads(workloads, 15)

# %%
kit.charts.workload_harm_chart(workloads)

# %% [markdown]
# ## What to check next
#
# - The upstream errors the resolver logged while these queries were slow: `03-error-logs`.
# - What the clients saw, and the TCP connections to the upstream: `04-capture-dns`,
#   `05-upstream-tcp`.
