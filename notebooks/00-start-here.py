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
# # Start here: from a p99 DNS latency alert to the root cause
#
# **DNS Incident Kit** turns the artefacts of a Kubernetes DNS latency incident into evidence:
#
# - **CoreDNS / NodeLocal DNSCache logs** (the `log` and `errors` plugins): slow queries, upstream
#   `i/o timeout` errors per minute;
# - **packet captures** (tcpdump / tshark, pcap or pcapng): client-side latency of every query,
#   unanswered queries, TCP connections to the upstream resolver and their SYN retransmissions;
# - **metric exports** (Prometheus text exposition, Prometheus API JSON, Grafana CSV/JSON):
#   per-node p50/p90/p99 and request rates, with the histogram bucket ceilings shown;
# - **resolver configuration** (Corefile, unbound.conf): settings such as `force_tcp`.
#
# The guided notebooks each answer one question, and the last one states the findings:
#
# | notebook | question |
# |---|---|
# | `01-latency-overview` | where and when did latency rise (metrics)? |
# | `02-query-logs` | which queries were slow (CoreDNS query log)? |
# | `03-error-logs` | which upstream errors, how many per minute, since when? |
# | `04-capture-dns` | what did clients actually wait (capture)? |
# | `05-upstream-tcp` | what happened on the connections to the upstream resolver? |
# | `06-findings` | the verdict, with evidence and the command to confirm each finding |
#
# This notebook lists the artefacts it is pointed at, with the kind the kit recognises in each
# file (from its content, not its name), and the parameters every notebook accepts.

# %% tags=["parameters"]
artefacts: str | list[str] | None = None  # incident folder, glob or files; None: the sample data

# %%
import polars as pl

import kit
import kit.report
import kit.sources.artefacts

kit.report.setup_kernel()  # charts as static SVG (no network), tables as in the report

# %% [markdown]
# ## The kit and the artefacts

# %%
kit.__version__

# %%
found = kit.report.inventory(artefacts or kit.sources.artefacts.SAMPLE, missing_ok=True)
found

# %% [markdown]
# Each row is one file: `kind` is what the kit recognised, `reason` says why (for `unknown`,
# why not). An empty table means the folder does not exist yet: create the lab's sample data with
# `make sample` (needs root), or point the kit at your own artefacts (below).

# %%
found.group_by("kind").agg(files=pl.len(), bytes=pl.col("size_bytes").sum()).sort("kind")

# %% [markdown]
# ## Point the kit at your own artefacts
#
# Put the files of your incident in one folder, in any layout and with any names: the kit reads
# each file's content to tell a capture from a log, a metric export or a configuration file. Then
# render the report on that folder:
#
# ```
# dnskit report path/to/incident/ -o reports/incident.html
# dnskit report 'captures/*.pcap' coredns.log metrics.json -o reports/incident.html
# dnskit report path/to/incident/ -p NAME VALUE -o reports/incident.html
# ```
#
# `dnskit report` runs every notebook that has inputs among the artefacts and writes **one
# self-contained HTML file**: findings first, code hidden, static charts, nothing loaded from the
# network, so it can be attached to an incident ticket. It lists which artefacts it used and which
# it ignored, and why. When a notebook fails, the report is still written with the error shown,
# and `dnskit report` exits with status 1. Without artefacts it renders the sample data
# (`dnskit report -o reports/sample.html`); `-j 2` runs two notebooks at a time.
#
# `-p NAME VALUE` sets a notebook parameter; these are all of them (`input_kinds` says which
# artefact kinds the report passes to a parameter):

# %%
kit.report.parameters_table()

# %% [markdown]
# ## Work interactively
#
# The notebooks are stored as plain Python (`notebooks/*.py`, jupytext percent format). To run
# them by hand, `make jupyter ARTEFACTS=path/to/incident/` (or `dnskit open path/to/incident/`)
# writes working copies pointed at your artefacts into `dnskit-notebooks/` and starts JupyterLab
# there: double-click a notebook, then Run All. Each notebook's `artefacts` parameter is the one
# thing to change to look at another incident; its inputs are found among those files by kind,
# and without artefacts every notebook runs on the sample data.
