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
# # 03 · Error logs: which upstream errors, how many per minute, since when?
#
# When a cache forwards its misses to an upstream resolver that stops answering, CoreDNS's
# `errors` plugin logs every failed exchange, e.g.
# `[ERROR] plugin/errors: 2 example.com. A: read tcp 10.0.0.5:41234->10.0.0.2:53: i/o timeout`.
# In the reference incident (NodeLocal DNSCache with `force_tcp` towards the AWS VPC resolver)
# there were **hundreds of TCP i/o timeouts per minute**, starting with the change.
#
# This notebook counts such errors per time bin by upstream, transport (`udp`/`tcp`) and
# operation (`dial`/`read`/`write`), and finds their onset against the change time. Not every
# resolver logs them: where the log cannot show upstream failures, the notebook says so and shows
# the same signal from the capture (failed and retransmitted TCP connection attempts).

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
coredns_log: list[str] | None = None  # CoreDNS logs (errors plugin); None: from artefacts
unbound_log: list[str] | None = None  # unbound logs; None: from artefacts
capture: list[str] | None = None  # captures on the cache nodes; None: from artefacts
run_json: list[str] | None = None  # lab run.json with the change time; None: from artefacts
change_time: str | None = None  # ISO-8601 time of the suspected change; overrides run.json
fix_time: str | None = None  # ISO-8601 time of the fix or rollback; overrides run.json
every: str = "10s"  # time bin of the counts (10s, 1m; widened for long logs)
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end

# %%
import polars as pl

import kit
import kit.analyses.resolver_logs
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
    artefacts, coredns_log=coredns_log, unbound_log=unbound_log, capture=capture, run_json=run_json
)
coredns_log, unbound_log, capture, run_json = sources.values(
    "coredns_log", "unbound_log", "capture", "run_json"
)
sources

# %%
tl = kit.sources.timeline.timeline(change_time=change_time, fix_time=fix_time, run_json=run_json)
core = kit.sources.timeline.restrict(
    kit.read_coredns_log(coredns_log) if coredns_log else None, start=window_start, end=window_end
)
unb = kit.sources.timeline.restrict(
    kit.read_unbound_log(unbound_log) if unbound_log else None, start=window_start, end=window_end
)
cap = kit.sources.timeline.restrict(
    kit.read_capture(capture, progress=False) if capture else None,
    start=window_start,
    end=window_end,
)
kit.sources.artefacts.check_span(tl, core, unb, cap)
print(kit.analyses.resolver_logs.change_note(tl, change_time=change_time))
print(kit.analyses.resolver_logs.failure_signal(core, cap))

# %% [markdown]
# ## What the logs can tell
#
# One row per resolver log given: how many lines, how many at error/warning level, and what this
# kind of log records about upstream failures at all.

# %%
kit.analyses.resolver_logs.error_coverage(coredns=core, unbound=unb)

# %% [markdown]
# ## Upstream errors (CoreDNS `errors` plugin)

# %%
kit.analyses.resolver_logs.error_summary(core) if core is not None else print(
    "No CoreDNS log given: no upstream errors to count (see the capture below)."
)

# %% [markdown]
# The table counts every error line per upstream, transport, op and kind (`timeout`, `refused`,
# ...), with the first and last time it was seen; `consolidate` summaries count as the errors they
# stand for (`errors`). `loop_probes` counts the lines about the `loop` plugin's own `HINFO`
# self-tests (random names such as `7553930501182690030.5295112943253332074`): the upstream failed
# them like any query, but no client waited for them. Lines without a timestamp (logs copied without `kubectl logs
# --timestamps`) are counted but cannot be placed in time (`without_ts`):

# %%
print(
    kit.analyses.resolver_logs.timing_note(
        core.errors, "upstream errors", count="consolidated_count"
    )
    if core is not None
    else "No CoreDNS log given."
)

# %% [markdown]
# ## Upstream errors over time
#
# Error lines per time bin, by upstream, transport and op (`consolidate` summaries carry no
# upstream and are left out here; they are in the totals above).

# %%
error_bin = (
    kit.analyses.resolver_logs.bin_every(core.errors["ts"], every) if core is not None else every
)
# lines without time cannot be binned: the note above counts them
errors_per_bin = kit.sources.coredns.error_counts(
    (core.errors if core is not None else kit.sources.coredns.ERRORS_SCHEMA.to_frame()).filter(
        pl.col("ts").is_not_null()
    ),
    every=error_bin,
    by=["upstream", "transport", "op"],
)
kit.charts.count_chart(
    errors_per_bin,
    by=["upstream", "transport", "op"],
    change_time=tl.change_time,
    fix_time=tl.fix_time,
    title=f"CoreDNS upstream errors per {kit.analyses.resolver_logs.bin_label(error_bin)}",
    y_title=f"error lines per {kit.analyses.resolver_logs.bin_label(error_bin)}",
) if errors_per_bin.height else print(
    "No upstream error with a timestamp: nothing to count per time bin (see the note above)."
)

# %% [markdown]
# The busiest bin of each upstream, transport and op, and its count as a rate per minute (the
# reference incident had **hundreds of TCP i/o timeouts per minute**):

# %%
kit.analyses.resolver_logs.peak_rate(
    errors_per_bin, every=error_bin, by=["upstream", "transport", "op"]
)

# %% [markdown]
# Every bin with errors (the table behind the chart; at most 30 rows shown):

# %%
kit.analyses.resolver_logs.nonzero_bins(errors_per_bin, by=["upstream", "transport", "op"])

# %% [markdown]
# ## Onset against the change

# %%
print(kit.analyses.resolver_logs.change_note(tl, change_time=change_time))
kit.analyses.resolver_logs.onset(
    errors_per_bin, by=["upstream", "transport", "op"], change_time=tl.change_time
)

# %% [markdown]
# What to look for: errors towards one upstream over `tcp` that start at the change (`first_ts`
# in the bin of the change or just after it: `since_change_s` between `-bin_s` and a few bins,
# `before_change` zero) point at the
# transport change: the upstream (like the AWS VPC resolver) answers UDP but limits or drops TCP.
# Errors spread over all upstreams and transports point at the network or the upstream itself.
#
# ## Other error and warning lines

# %%
messages = kit.analyses.resolver_logs.log_messages(coredns=core, unbound=unb)
kit.analyses.resolver_logs.message_summary(messages)

# %% [markdown]
# Messages grouped by pattern (addresses and numbers replaced), most frequent first. An empty
# table means the resolver logged no error or warning at all.
#
# ## The same signal from the capture
#
# **Capture-derived, not logged by the resolver**: each TCP connection the cache opened towards
# an upstream on port 53, per time bin; `syn_retransmits` counts its SYNs sent again (the first
# after 1 s, then 2 s, 4 s...: RFC 6298), `not_established` the attempts that never got an answer.
# This is what CoreDNS logs as `dial tcp ...: i/o timeout`.

# %%
capture_bin = (
    kit.analyses.resolver_logs.bin_every(cap.tcp["ts_syn"], every) if cap is not None else every
)
attempts = (
    kit.analyses.resolver_logs.connect_failures(
        cap.tcp, every=capture_bin, by=["capture", "server_ip"]
    )
    if cap is not None
    else None
)
kit.charts.count_chart(
    attempts,
    value="syn_retransmits",
    by=["capture", "server_ip"],
    change_time=tl.change_time,
    fix_time=tl.fix_time,
    title="Capture-derived: SYN retransmissions towards each upstream, per "
    + kit.analyses.resolver_logs.bin_label(capture_bin),
    y_title=f"SYN retransmissions per {kit.analyses.resolver_logs.bin_label(capture_bin)}",
) if attempts is not None and attempts.height else print(
    "No capture given." if cap is None else "No TCP connection to port 53 in the capture."
)

# %%
kit.analyses.resolver_logs.onset(
    attempts, value="syn_retransmits", by=["capture", "server_ip"], change_time=tl.change_time
) if attempts is not None else print("No capture given.")

# %%
attempts.group_by("capture", "server_ip").agg(
    pl.col("attempts", "syn_retransmits", "not_established").sum()
).sort("capture", "server_ip") if attempts is not None else print("No capture given.")

# %% [markdown]
# A cache that forwards over UDP opens no TCP connection at all (a capture with no row here
# forwarded over UDP, or had no cache misses). Thousands of SYN retransmissions in a minute at
# a packet rate far below the upstream's limits mean the upstream drops TCP connection attempts:
# confirm per connection in `05-upstream-tcp`.
#
# ## What to check next
#
# - Which queries were slow meanwhile: `02-query-logs`.
# - The TCP conversations with the upstream, packet by packet: `05-upstream-tcp`.
