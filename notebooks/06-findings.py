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
# # Findings: the verdict, with evidence and the command to confirm each one
#
# This notebook runs every check of `kit.findings` on the artefacts it is given and states what
# fired. Each finding has a severity, a one-paragraph explanation, the numbers and rows behind
# it, and the exact command or query that confirms it on the raw files. The report shows these
# findings first.
#
# All inputs are optional: a check runs only when its data is there (a capture for SYN
# retransmissions and packet rates, a resolver configuration for forced TCP, metrics for the
# bucket ceiling and the blind spot, query logs or captures for latency modes, SERVFAIL and
# search-path expansion).

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
capture: list[str] | None = None  # packet captures (pcap, pcapng); None: from artefacts
coredns_log: list[str] | None = None  # CoreDNS / NodeLocal DNSCache logs; None: from artefacts
unbound_log: list[str] | None = None  # unbound query logs; None: from artefacts
metrics: list[str] | None = None  # metric exports (Prometheus, Grafana); None: from artefacts
corefile: list[str] | None = None  # Corefile(s) with the forward settings; None: from artefacts
unbound_conf: list[str] | None = None  # unbound.conf files; None: from artefacts
run_json: list[str] | None = None  # lab run.json with phases and change time; None: found
node_evidence: list[str] | None = None  # nstat, conntrack -S, ethtool -S; None: from artefacts
change_time: str | None = None  # when the suspected change was made, ISO-8601 (overrides run.json)
slow_threshold_s: float = 1.0  # a client answer slower than this is slow, in seconds
upstream: list[str] | None = None  # upstream resolver addresses; None: from configs and capture
packet_limit_pps: float = 1024.0  # resolver packet limit per network interface, packets/s
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end

# %%
import kit
import kit.analyses.resolver_logs
import kit.charts
import kit.findings
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
    artefacts,
    capture=capture,
    coredns_log=coredns_log,
    unbound_log=unbound_log,
    metrics=metrics,
    corefile=corefile,
    unbound_conf=unbound_conf,
    run_json=run_json,
    node_evidence=node_evidence,
)
capture, coredns_log, unbound_log, metrics, corefile, unbound_conf, run_json = sources.values(
    "capture", "coredns_log", "unbound_log", "metrics", "corefile", "unbound_conf", "run_json"
)
(node_evidence,) = sources.values("node_evidence")
sources

# %% [markdown]
# ## What was loaded
#
# Each row is one kind of input and how many records it holds; an empty `rows` means the input
# was not given, and the checks that need it did not run.

# %%
inputs = kit.sources.timeline.restrict(
    kit.findings.load_inputs(
        capture=capture,
        coredns_log=coredns_log,
        unbound_log=unbound_log,
        metrics=metrics,
        corefile=corefile,
        unbound_conf=unbound_conf,
        run_json=run_json,
        change_time=change_time,
        node_evidence=node_evidence,
    ),
    start=window_start,
    end=window_end,
)
kit.sources.artefacts.check_span(inputs.timeline, inputs)
inputs.given()

# %% [markdown]
# The upstream resolvers the checks look at: the ones given, else those named in the forward
# settings and those the capture shows the cache forwarding misses to.

# %%
upstreams = upstream or kit.findings.infer_upstreams(inputs.capture, inputs.forward)
upstreams

# %% [markdown]
# ## The findings
#
# Most severe first. `critical`: explains the latency on its own; `warning`: a contributing cause
# or a problem in the evidence itself (e.g. metrics that cannot see the latency); `info`: a cause
# ruled out. Each finding also has a role in the causal chain (`root-cause`, `mechanism`,
# `symptom`, `ruled-out`, `context`): the report groups them by role, and `dnskit findings
# ARTEFACTS --json` (or `--format md`) prints the same verdict without the notebooks.

# %%
found = kit.findings.run_on(
    inputs,
    slow_threshold_s=slow_threshold_s,
    upstreams=upstreams,
    packet_limit_pps=packet_limit_pps,
)
kit.report.emit_findings(found)

# %%
kit.findings.findings_frame(found).select("severity", "id", "title", "evidence")

# %% [markdown]
# ### Every check: fired, not fired, or not checked
#
# A check that did not fire says why, with the numbers it looked at; one that could not run says
# what was missing, or which file could not be read (a broken Corefile or unbound.conf stops only
# the checks that need it; the others run on the rest).

# %%
kit.findings.results_frame(found.results)

# %% [markdown]
# ### Upstream error bursts: fired or not, and why
#
# The `upstream-error-bursts` check counts the upstream errors the resolver logged (CoreDNS
# `errors` plugin lines, `consolidate` summaries as the errors they stand for, unbound error
# lines) per minute and fires from 10 in one minute (`critical` from 100: the reference incident
# had hundreds of TCP i/o timeouts per minute). Lines without a timestamp cannot be placed in a
# minute. The verdict says which case applies:

# %%
kit.findings.burst_status(coredns=inputs.coredns, unbound=inputs.unbound)

# %% [markdown]
# ## The symptoms over time
#
# Retransmitted SYNs towards the upstream, slow or unanswered client queries (capture) and
# upstream errors (CoreDNS log), per second in 5 s bins (coarser bins when the inputs span days:
# the width is printed above the chart), with the change marked when it is known
# and the mean before and after it. A cause starts at the change; the symptoms should stop at
# the fix.

# %%
symptom_bin = (
    kit.analyses.resolver_logs.span_every(  # 5 s, coarser when the inputs span days or years
        inputs.capture.meta if inputs.capture is not None else None,
        inputs.coredns.queries if inputs.coredns is not None else None,
        inputs.coredns.errors if inputs.coredns is not None else None,
        every="5s",
        columns=("ts", "first_ts", "last_ts"),
    )
)
symptoms = kit.findings.symptom_series(
    capture=inputs.capture,
    coredns=inputs.coredns,
    upstreams=upstreams,
    slow_threshold_s=slow_threshold_s,
    every=symptom_bin,
)
print(f"Events per second, in bins of {kit.analyses.resolver_logs.bin_label(symptom_bin)}.")
kit.charts.symptom_chart(symptoms, inputs.timeline)

# %% [markdown]
# ## The evidence behind each finding
#
# One table per finding: its numbers, then the rows behind them (evidence frames). Run the
# `confirm` command on the raw artefacts to check a finding without the kit.

# %%
kit.report.show_evidence(found)

# %% [markdown]
# ## What to change
#
# For the reference incident (forced TCP towards the resolver, SYN retransmissions, latencies at
# 1, 3 and 7 s, packet rate far below the limit):
#
# - **forward over UDP**: in the Corefile of NodeLocal DNSCache / CoreDNS remove `force_tcp` from
#   the `forward` block, or use `prefer_udp` (TCP only after a truncated answer); in unbound set
#   `tcp-upstream: no` (and `forward-tcp-upstream: no` in the forward-zone);
# - then check that the SYN retransmissions towards the resolver stop and that client p99 drops
#   back (notebooks 04 and 05), and that the error bursts end (notebook 03).
#
# For the other findings: search-path expansion: use fully qualified names or lower `ndots`;
# truncation: larger EDNS buffer or smaller answers; A/AAAA race: `single-request-reopen` or
# NodeLocal DNSCache; packet limit: spread queries over more interfaces or cache more; bucket
# ceiling and blind spot: measure from the client side (captures) until the metrics can see it.
