"""Findings: the verdict of an investigation, each with its evidence and how to confirm it.

:func:`run` takes inputs that are already loaded (a :class:`kit.sources.capture.Capture`, a
:class:`kit.sources.coredns.CoreDNSLog`, a :class:`kit.sources.unbound.ResolverLog`, a metrics frame of
``kit.read_metrics``, forward settings in ``kit.sources.corefile.FORWARD_SCHEMA``) and runs every check
that has the data it needs. Each check is a function ``<cause>_result(...) -> CheckResult`` (fired with
its finding, not fired with the numbers that decided it, not checked with why) with a shortcut
``check_<cause>(...) -> Finding | None``, so it can be run and tested on its own. :func:`run_checks`
gives every check's result, graded by the evidence around it (:func:`grade`: what confirms and
what refutes each finding, a confidence, the cause a finding is a consequence of); :func:`run`
the findings that fired.

The checks (``id``: what fires it):

- ``forced-tcp``: a forward upstream whose transport is forced to TCP (CoreDNS ``force_tcp``,
  unbound ``tcp-upstream``/``forward-tcp-upstream``); critical when the capture's SYN
  retransmissions or the CoreDNS log's TCP errors towards it show the damage.
- ``upstream-unreachable``: the cache's UDP queries to its upstream unanswered for a stretch of
  time (the cache's own retry timers in the latency modes, no TCP involved).
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
    COREDNS_RENAMES,
    auto_window_step,
    bucket_ceiling_result,
    bucket_layout,
    check_bucket_ceiling,
    check_latency_modes,
    check_metrics_blind_spot,
    latency_modes_result,
    metric_renames,
    metrics_blind_spot_result,
)
from kit.findings.checks_logs import (
    burst_status,
    check_error_bursts,
    check_ndots_expansion,
    check_servfail_storm,
    error_bursts_result,
    error_kind,
    ndots_expansion_result,
    servfail_storm_result,
)
from kit.findings.checks_transport import (
    check_conntrack_race,
    check_forced_tcp,
    check_packet_rate,
    check_syn_retransmissions,
    check_truncation,
    check_upstream_unreachable,
    conntrack_race_result,
    forced_tcp_result,
    packet_rate_result,
    syn_retransmissions_result,
    truncation_result,
    upstream_unreachable_result,
)
from kit.findings.inputs import (
    Inputs,
    Unreadable,
    edns_buffer_sizes,
    load_forward,
    load_inputs,
)
from kit.findings.model import (
    CHECK_STATUSES,
    CONFIDENCES,
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
from kit.findings.runner import (
    CAUSES,
    CHECK_NEEDS,
    SUPPORT,
    SYMPTOMS_SCHEMA,
    evidence_table,
    findings_frame,
    fired_findings,
    grade,
    run,
    run_checks,
    symptom_series,
)
from kit.findings.verdict import (
    CHECKS,
    FIXES,
    Verdict,
    check_json,
    coverage,
    finding_json,
    findings_for_artefacts,
    headline_series,
    json_value,
    results_frame,
    run_on,
    summarize,
    verdict_json,
    verdict_markdown,
    verdict_text,
)
from kit.sources.timeline import restrict

__all__ = [
    "CAUSES",
    "CHECKS",
    "CHECK_NEEDS",
    "CHECK_STATUSES",
    "CONFIDENCES",
    "COREDNS_RENAMES",
    "FINDINGS_SCHEMA",
    "FIXES",
    "KNOWN_TIMERS",
    "ROLES",
    "ROLE_OF",
    "SEVERITIES",
    "SUPPORT",
    "SYMPTOMS_SCHEMA",
    "CheckResult",
    "Finding",
    "Inputs",
    "Role",
    "Severity",
    "Unreadable",
    "Verdict",
    "auto_window_step",
    "bucket_ceiling_result",
    "bucket_layout",
    "burst_status",
    "check_bucket_ceiling",
    "check_conntrack_race",
    "check_error_bursts",
    "check_forced_tcp",
    "check_json",
    "check_latency_modes",
    "check_metrics_blind_spot",
    "check_ndots_expansion",
    "check_packet_rate",
    "check_servfail_storm",
    "check_syn_retransmissions",
    "check_truncation",
    "check_upstream_unreachable",
    "conntrack_race_result",
    "coverage",
    "edns_buffer_sizes",
    "error_bursts_result",
    "error_kind",
    "evidence_table",
    "finding_json",
    "findings_for_artefacts",
    "findings_frame",
    "fired_findings",
    "forced_tcp_result",
    "grade",
    "headline_series",
    "infer_upstreams",
    "json_value",
    "latency_modes_result",
    "load_forward",
    "load_inputs",
    "metric_renames",
    "metrics_blind_spot_result",
    "ndots_expansion_result",
    "packet_rate_result",
    "restrict",
    "results_frame",
    "run",
    "run_checks",
    "run_on",
    "servfail_storm_result",
    "summarize",
    "symptom_series",
    "syn_retransmissions_result",
    "truncation_result",
    "upstream_unreachable_result",
    "verdict_json",
    "verdict_markdown",
    "verdict_text",
]
