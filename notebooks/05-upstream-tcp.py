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
# # 05 · What happened on the connections to the upstream resolver?
#
# A node-local cache forwards its misses to the upstream resolver (the AWS VPC resolver at
# `169.254.169.253`). With `force_tcp` (CoreDNS) or `tcp-upstream: yes` (unbound) every miss may
# need a TCP connection; when the resolver drops connection attempts, the kernel retransmits the
# SYN after 1 s, then 2 s, 4 s, 8 s later, and the pod waits **1, 3, 7, 15 s**.
#
# This notebook checks, from the captures:
#
# 1. the TCP connections to the upstream: how many needed retransmitted SYNs, handshake times;
# 2. whether the client latency modes sit on that SYN-retransmission ladder;
# 3. which upstream connection served each slow client answer (the attribution join);
# 4. the packet rate towards the upstream against the resolver's packet limit (1024 pps per
#    network interface for the AWS VPC resolver): is it rate limiting, or something else?

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data
capture: list[str] = []  # pcap/pcapng files or folders from the nodes; []: from artefacts
run_json: list[str] | None = None  # lab run.json with change/fix times; None: from artefacts
change_time: str | None = None  # when the change happened (ISO 8601 UTC); overrides run_json
fix_time: str | None = None  # when it was fixed (ISO 8601 UTC); overrides run_json
corefile: list[str] | None = None  # Corefile(s) naming the upstreams; None: from artefacts
unbound_conf: list[str] | None = None  # unbound.conf files; None: from artefacts
upstream: list[str] | None = None  # upstream resolvers (169.254.169.253...); None: inferred
cache_ip: list[str] | None = None  # node-local cache address(es); None: inferred from capture
packet_limit_pps: float = 1024.0  # upstream packet limit, packets per second (AWS VPC: 1024)
slow_threshold_s: float = 1.0  # a client answer slower than this is slow, in seconds
every: str = "1s"  # time bin for SYNs and the I/O graph (polars duration: 1s, 5s, 1m)
window_start: str | None = None  # ISO-8601 UTC start of a time window; None: from the start
window_end: str | None = None  # ISO-8601 UTC end of the time window (exclusive); None: to the end
dnstap: list[str] | None = None  # dnstap files (fstrm) of the cache; None: from artefacts
coredns_log: list[str] | None = None  # CoreDNS query logs of the cache; None: from artefacts
client_timeout_s: float = 5.0  # how long a client waits per try (resolv.conf timeout), seconds

# %%
import polars as pl

import kit
import kit.analyses.attribution
import kit.analyses.rates
import kit.analyses.upstream
import kit.charts
import kit.findings
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
    artefacts,
    required=["capture"],
    capture=capture,
    run_json=run_json,
    corefile=corefile,
    unbound_conf=unbound_conf,
)
capture, run_json, corefile, unbound_conf = sources.values(
    "capture", "run_json", "corefile", "unbound_conf"
)
sources

# %%
cap = kit.sources.timeline.restrict(
    kit.read_capture(capture, progress=False), start=window_start, end=window_end
)
tl = kit.sources.timeline.timeline(change_time=change_time, fix_time=fix_time, run_json=run_json)
kit.sources.artefacts.check_span(tl, cap)
# a Corefile or unbound.conf that cannot be read is listed, the readable ones are used
forward, unreadable_configs = kit.findings.load_forward(corefile, unbound_conf)
upstreams = kit.analyses.upstream.infer_upstream_ips(
    cap.dns, upstream, forward=forward, tcp=cap.tcp, cache_ips=cache_ip
)
caches = kit.analyses.upstream.infer_cache_ips(cap.dns, cache_ip, upstream_ips=upstreams)

# %% [markdown]
# Configs that could not be read (file and reason; the forward settings come from the others):

# %%
unreadable_configs

# %% [markdown]
# ## Who is the upstream?
#
# One rule, the same as `06-findings` (`kit.analyses.upstream.infer_upstream_ips`): the `upstream`
# parameter when given; else the hosts of the forward settings (`corefile`, `unbound_conf`), then
# the servers this capture shows receiving **forwarded** queries: the same name and type asked by
# another sender at most 0.5 s after a query to another server (a query over a TCP connection
# opened for it counts from its first SYN), before that server answered; or failed TCP connection
# attempts that start the same way (when every SYN is dropped no query reaches the upstream). A pod
# asking two resolvers the same name is one sender: that is not forwarding. The cache is the
# server asked by the most distinct clients among the others (`cache_ip` overrides it).
#
# `basis` says where each role comes from; `forwarded` counts the queries that look forwarded,
# `attempts` the failed connections that do. An upstream from the settings with no queries was
# not asked in these captures (capture on the node, both legs); no upstream at all means a
# capture of the client side only: set `upstream`.

# %%
kit.analyses.upstream.server_roles(
    cap.dns, upstream_ips=upstream, forward=forward, tcp=cap.tcp, cache_ips=cache_ip
)

# %% [markdown]
# The upstream addresses every section below looks at (the `upstream` rows above, in order):

# %%
upstreams

# %% [markdown]
# ## TCP connections to the upstream
#
# One row per capture and upstream. `not_established` connections never got a SYN/ACK;
# `with_syn_retransmits` needed more than one SYN; handshake times are in seconds. A healthy link
# needs no retransmitted SYN at all; on a node that only uses UDP there is no row.

# %%
kit.analyses.upstream.connection_summary(cap.tcp, by=["capture", "server_ip"], server_ips=upstreams)

# %% [markdown]
# ## SYN retransmissions over time
#
# Retransmitted SYNs towards the upstream per time bin. They start with the change (dashed rule)
# and stop with the fix if the switch to TCP caused them.

# %%
syn = kit.analyses.upstream.syn_retransmissions(
    cap.packets, every=every, by=["capture", "dst_ip"], server_ips=upstreams
)
kit.charts.syn_retransmissions_chart(
    syn, by=["capture", "dst_ip"], change_time=tl.change_time, fix_time=tl.fix_time
)

# %% [markdown]
# ## Handshake times
#
# First SYN to SYN/ACK per connection, on a log scale, with the retransmission timers as red
# rules: handshakes sitting on 1 / 3 / 7 / 15 s are connections whose first 1 / 2 / 3 / 4 SYNs
# were lost. Dashes tell the phases of the run apart (by the connection's first SYN).

# %%
ladder = kit.analyses.upstream.syn_ladder()
upstream_tcp = kit.sources.timeline.with_phase(
    cap.tcp.filter(pl.col("server_ip").is_in(upstreams)), tl, ts="ts_syn"
)
handshakes = kit.analyses.upstream.log_histogram(
    upstream_tcp, value="handshake_s", by=["capture", "server_ip", "phase"]
)
kit.charts.latency_histogram_chart(
    handshakes,
    by=["capture", "server_ip"],
    dash="phase",
    ladder=ladder,
    title="TCP handshake time to the upstream",
    x_title="first SYN to SYN/ACK (s, log scale)",
    y_title="connections per bin",
)

# %% [markdown]
# ### Drill-down: the worst connection, as tshark analyses it
#
# The SYNs of the connection with the most retransmitted SYNs, dissected again by pyshark (only
# that connection is read): `rto_s` is tshark's `tcp.analysis.rto`, the seconds since the original
# SYN (frame `rto_frame`). Open it in Wireshark with `tcp.stream == N`. Empty when no SYN was
# retransmitted.

# %%
kit.analyses.upstream.syn_drill_down(cap, upstreams)

# %% [markdown]
# ## Client latency modes against the SYN ladder
#
# The slow tail of what the pods waited (from the client side of the same captures), its peaks
# (diamonds) and the SYN timers (rules). Peaks on the rules mean the pods waited for the cache's
# TCP connection attempts; peaks elsewhere point at another timer (e.g. a resolver retry after
# a timeout).

# %%
client = kit.analyses.upstream.client_queries(cap.dns, caches)
modes = kit.analyses.upstream.latency_modes_by(client, value="latency_s", by=["capture"])
client_hist = kit.analyses.upstream.log_histogram(client, value="latency_s", by=["capture"])
del client  # the attribution below reads the capture itself: free the client side first
kit.charts.ladder_chart(client_hist, ladder, modes, by=["capture"])

# %%
kit.analyses.upstream.match_ladder(modes, ladder)

# %% [markdown]
# ## Which upstream connection served each slow answer?
#
# Every slow (or unanswered) client query joined with the upstream transaction that carried the
# same name right after it, and the TCP connection it used (`kit.analyses.attribution.attribute_slow_answers`).
# `up_match` says how it was found: `dns` (the upstream query), `tc_retry` (the upstream's UDP
# answer had TC=1, so the cache retried over TCP: that retry is the leg), `failed_connection` (a
# connection that never carried a query, e.g. all its SYNs dropped); null: nothing found. If answers with 1, 2,
# 3 retransmitted SYNs wait about 1, 3, 7 s, the lost SYNs explain the latency.

# %%
attribution = kit.analyses.attribution.attribute_slow_answers(cap, slow_s=slow_threshold_s)
kit.analyses.upstream.attribution_summary(attribution)

# %% [markdown]
# The 20 slowest, with the upstream side (`up_wait_s`: seconds from the upstream leg's first SYN
# to its answer; `tcp_stream`: open it in Wireshark with `tcp.stream == N`).

# %%
attribution.head(20).select(
    "capture", "ts", "qname", "qtype", "latency_s", "answered", "up_match", "up_transport",
    "up_wait_s", "tcp_stream", "syn_retransmits", "handshake_s", "explained", "frame_query"
)  # fmt: skip

# %% [markdown]
# ## Where did the time go? (per hop)
#
# The per-query ledger (`kit.ledger`) joins each slow (at least `slow_threshold_s`) or unanswered
# client query with the hops that served it, from the captures and whatever dnstap files and
# CoreDNS query logs the artefacts hold, by name (case-insensitive), type and time. Each bar is
# one of the slowest answered client queries, split into the time it spent **in the cache before
# asking upstream**, in the **TCP connect** to the upstream (SYN retransmissions), **upstream**
# (all tries), and **back through the cache**; when no upstream answer was seen (the cache
# answered by itself) the rest is **upstream, no answer seen**; a cache hit is one grey segment.
# The marker at the end of a bar is the query's state (the most telling of: unanswered, answered
# after the client gave up, waited on retransmitted SYNs, TC→TCP fallback, retried, forwarded,
# cache hit); the dashed black rule is the client's timeout (`client_timeout_s`). When the
# artefacts hold a capture and dnstap, each sees the same queries: their bars are marked
# `[capture]` / `[dnstap]` and counted apart.

# %%
hop_sources = kit.sources.artefacts.resolve_inputs(
    artefacts, dnstap=dnstap, coredns_log=coredns_log
)
dnstap, coredns_log = hop_sources.values("dnstap", "coredns_log")
ledger = kit.ledger(
    cap,
    dnstap=kit.sources.timeline.restrict(
        kit.read_dnstap(dnstap), start=window_start, end=window_end
    )
    if dnstap
    else None,
    coredns=kit.sources.timeline.restrict(
        kit.read_coredns_log(coredns_log), start=window_start, end=window_end
    )
    if coredns_log
    else None,
    client_timeout_s=client_timeout_s,
    slow_s=slow_threshold_s,
)
slow_ledger, ledger_notes = ledger.queries, ledger.notes
del ledger  # the hops (long form) are not shown: free them
kit.report.narrate(
    kit.charts.ledger.describe_breakdown(
        slow_ledger, ledger_notes, slow_s=slow_threshold_s, client_timeout_s=client_timeout_s
    )
)
kit.report.emit_summary_line(
    "Where the time went", kit.charts.ledger.time_went_line(slow_ledger, slow_s=slow_threshold_s)
)

# %%
if kit.charts.ledger.has_upstream_leg(slow_ledger):
    hop_chart = kit.charts.ledger.hop_breakdown_chart(
        slow_ledger, top=30, client_timeout_s=client_timeout_s
    )
else:
    hop_chart = None  # no query was forwarded: the text above says why, there is nothing to split
hop_chart

# %% [markdown]
# How many slow or unanswered client queries are in each state, and where their time went: the
# median seconds of each segment (`median_connect_s`: TCP connect, `median_up_s`: upstream,
# `median_up_unanswered_s`: after an upstream query that got no answer...),
# over the answered queries of that state. What the ledger could not join, and why, follows.

# %%
kit.charts.ledger.state_breakdown(slow_ledger).select(
    "source", "state", "queries", "share", "answered", "median_latency_s", "median_cache_s",
    "median_before_up_s", "median_connect_s", "median_up_s", "median_up_unanswered_s",
    "median_after_up_s",
)  # fmt: skip

# %%
pl.DataFrame({"ledger_note": list(ledger_notes)}, schema={"ledger_note": pl.String})

# %% [markdown]
# ## I/O graph: packets per second towards the upstream
#
# Packets sent to the upstream per time bin, with the packet limit as a red rule. Bins above the
# limit would point at rate limiting (the resolver drops packets over its budget); a rate far
# below it rules that out: the drops are about TCP, not volume.

# %%
rates = kit.analyses.rates.packet_rates(
    kit.analyses.upstream.upstream_packets(cap.packets, upstreams),
    every=every,
    by=["capture", "dst_ip"],
    limit_pps=packet_limit_pps,
)
kit.charts.io_graph_chart(
    rates,
    by=["capture", "dst_ip"],
    limit_pps=packet_limit_pps,
    change_time=tl.change_time,
    fix_time=tl.fix_time,
)

# %%
kit.analyses.rates.rate_summary(rates, by=["capture", "dst_ip"], limit_pps=packet_limit_pps)

# %% [markdown]
# The limit counts every packet a network interface sends to the resolver, whatever the
# destination address: the peak per interface (one capture = one node's interface), with the TCP
# handshake and acknowledgement packets (`tcp_overhead_packets`) that a forced-TCP cache adds to
# each query, in 1 s bins:

# %%
per_interface, per_destination = kit.analyses.rates.interface_rates(
    kit.analyses.upstream.upstream_packets(cap.packets, upstreams), limit_pps=packet_limit_pps
)
per_interface

# %% [markdown]
# **Reading it:** retransmitted SYNs that begin with the change, handshakes and client latency
# modes on the 1 / 3 / 7 s rungs, slow answers each served by a connection with lost SYNs, and a
# packet rate far below the limit together say: the upstream is dropping TCP connection attempts,
# not rate limiting packets. The fix is to forward over UDP (CoreDNS: drop `force_tcp`, or
# `prefer_udp`; unbound: `tcp-upstream: no`). `06-findings` states it with the evidence.
