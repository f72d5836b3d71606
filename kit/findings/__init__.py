"""Findings: the verdict of an investigation, each with its evidence and how to confirm it.

:func:`run` takes inputs that are already loaded (a :class:`kit.sources.capture.Capture`, a
:class:`kit.sources.coredns.CoreDNSLog`, a :class:`kit.sources.unbound.ResolverLog`, a metrics frame of
``kit.read_metrics``, forward settings in ``kit.sources.corefile.FORWARD_SCHEMA``) and runs every check
that has the data it needs. Each check is a function ``check_<cause>(...) -> Finding | None`` so
it can be run and tested on its own; ``None`` means "this cause is not visible in this data".

The checks (``id``: what fires it):

- ``forced-tcp``: a forward upstream whose transport is forced to TCP (CoreDNS ``force_tcp``,
  unbound ``tcp-upstream``/``forward-tcp-upstream``); critical when the capture's SYN
  retransmissions or the CoreDNS log's TCP errors towards it show the damage.
- ``syn-retransmissions``: SYNs towards a port-53 upstream sent again (the kernel's SYN backoff:
  1 s, then 2 s, 4 s...), with the slow client answers they explain.
- ``latency-timer-modes``: slow latencies pile up at the value of a known timer (SYN backoff
  1/3/7/15 s, CoreDNS's 2 s upstream read timeout, a 5 s resolver retry).
- ``bucket-ceiling``: a latency quantile from a histogram is pinned at the last finite bucket
  (CoreDNS: 8.192 s): the metric only says "at least this slow".
- ``packet-rate-limit``: packets towards one resolver above the per-interface limit (AWS VPC
  resolver: 1024 pps); ``packet-rate-below-limit`` (info) when answers are slow but the rate
  stays far below it, which rules the limit out.
- ``upstream-error-bursts``: bins with many upstream errors (CoreDNS ``errors`` plugin,
  unbound error lines).
- ``metrics-blind-spot``: client-side p99 from the capture far above the server-side p99 from
  the metrics.
- classic causes: ``ndots-search-expansion`` (NXDOMAIN answers for search-path expansions),
  ``truncation-tcp-fallback`` (TC=1 answers retried over TCP), ``servfail-storm``,
  ``conntrack-race`` (A and AAAA from one socket, one of them answered ~5 s late or never).

Around the checks: :func:`findings_frame` (one row per finding), :func:`kit.report.finding_html` and
:func:`kit.report.show_evidence` (display in a notebook), :func:`symptom_series` / :func:`kit.charts.symptom_chart`
(the symptoms per second with the change marked), :func:`load_inputs` / :class:`Inputs` /
:func:`run_on` (load artefact paths for the notebook), :func:`restrict` (an input cut to a phase
or to some captures), :func:`infer_upstreams` and :func:`auto_window_step`.

Severity: ``critical`` explains the latency on its own, ``warning`` contributes or hides it,
``info`` rules a cause out. :func:`run` sorts by severity, then in the order of the list above.

Names in evidence frames are data (``qname`` as on the wire in presentation form, without the
trailing dot, case preserved); the report escapes them.
"""

from __future__ import annotations

from kit.findings._util import infer_upstreams
from kit.findings.checks_latency import (
    auto_window_step,
    check_bucket_ceiling,
    check_latency_modes,
    check_metrics_blind_spot,
)
from kit.findings.checks_logs import (
    burst_status,
    check_error_bursts,
    check_ndots_expansion,
    check_servfail_storm,
    error_bursts_result,
)
from kit.findings.checks_transport import (
    check_conntrack_race,
    check_forced_tcp,
    check_packet_rate,
    check_syn_retransmissions,
    check_truncation,
)
from kit.findings.inputs import Inputs, load_inputs
from kit.findings.model import (
    CHECK_STATUSES,
    FINDINGS_SCHEMA,
    KNOWN_TIMERS,
    ROLE_OF,
    ROLES,
    SEVERITIES,
    CheckResult,
    Finding,
    Role,
    Severity,
)
from kit.findings.runner import SYMPTOMS_SCHEMA, evidence_table, findings_frame, run, symptom_series
from kit.findings.verdict import (
    CHECKS,
    FIXES,
    Verdict,
    coverage,
    finding_json,
    findings_for_artefacts,
    headline_series,
    json_value,
    run_on,
    summarize,
    verdict_json,
    verdict_markdown,
    verdict_text,
)
from kit.sources.timeline import restrict

__all__ = [
    "CHECKS",
    "CHECK_STATUSES",
    "FINDINGS_SCHEMA",
    "FIXES",
    "KNOWN_TIMERS",
    "ROLES",
    "ROLE_OF",
    "SEVERITIES",
    "SYMPTOMS_SCHEMA",
    "CheckResult",
    "Finding",
    "Inputs",
    "Role",
    "Severity",
    "Verdict",
    "auto_window_step",
    "burst_status",
    "check_bucket_ceiling",
    "check_conntrack_race",
    "check_error_bursts",
    "check_forced_tcp",
    "check_latency_modes",
    "check_metrics_blind_spot",
    "check_ndots_expansion",
    "check_packet_rate",
    "check_servfail_storm",
    "check_syn_retransmissions",
    "check_truncation",
    "coverage",
    "error_bursts_result",
    "evidence_table",
    "finding_json",
    "findings_for_artefacts",
    "findings_frame",
    "headline_series",
    "infer_upstreams",
    "json_value",
    "load_inputs",
    "restrict",
    "run",
    "run_on",
    "summarize",
    "symptom_series",
    "verdict_json",
    "verdict_markdown",
    "verdict_text",
]
