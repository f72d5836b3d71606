"""Altair charts for the notebooks: tidy polars frames in, ``alt.Chart`` out.

Every chart aggregates before plotting: at most ``max_series`` lines (the ones with the highest peak;
the title says how many were left out) and at most ``max_points`` rows in the chart data (time bins
of a "nice" width, maximum per bin for latencies so spikes survive, mean for rates). Data values
(instance names, rcodes, qnames...) only ever travel as *data*, under fixed field names, never as
field names, titles or Vega expressions, so a label like ``<script>`` or one with quotes is drawn
as text.

Readability rules shared by every chart:

- Time axes (every chart with ``ts`` on x, and :func:`with_change_marker`) use a UTC scale with
  ticks at whole multiples of a step chosen from the span, labelled with seconds only when the
  step is under a minute, ``%H:%M`` for minutes and hours, the date when the span crosses a UTC
  day (:func:`_fit_time_axis`); tooltips show UTC as well.
- Histograms on a log axis draw each bin over its full width and empty bins at zero (bars, or
  step outlines that fall to zero between runs of non-empty bins), never a line across a gap.
- Labelled vertical rules (latency modes, thresholds, SYN timers) get their labels laid out in
  rows, each on a white box, so close rules never have overlapping labels, and the y scale
  leaves room above the data for those rows.

Nothing here sets renderers or data transformers, except :func:`use_report_renderer`, which the
report runner (or a notebook's first cell) calls once.

Layout of this package, by concept: :mod:`.theme` (static SVG rendering, the report theme, chart
size), :mod:`.metrics` (latency quantiles, rates, before/after), :mod:`.capture` (latency
histograms and the SYN ladder, slow answers, SYN retransmissions, the I/O graph), :mod:`.logs`
(counts, slowest groups, the duration histogram, the change marker), :mod:`.headline` (the
report's headline and symptom charts), :mod:`.ledger` (where the time went, per hop, from a
per-query ledger), :mod:`.workloads` (the workloads most hurt); ``_base`` (series, bins, formats,
time axes and marks)
and ``_histogram`` (log-scale histograms and rule labels) are what they share.
"""

from __future__ import annotations

from kit.charts.capture import (
    io_graph_chart,
    ladder_chart,
    latency_histogram_chart,
    slow_answers_chart,
    syn_retransmissions_chart,
)
from kit.charts.headline import headline_chart, symptom_chart
from kit.charts.ledger import hop_breakdown_chart, state_breakdown_chart
from kit.charts.logs import count_chart, duration_histogram_chart, slow_by_chart, with_change_marker
from kit.charts.metrics import (
    COREDNS_CEILING_S,
    before_after_chart,
    latency_quantiles_chart,
    rate_chart,
)
from kit.charts.theme import HEIGHT, REPORT_RIGHT_PADDING, REPORT_THEME, WIDTH, use_report_renderer
from kit.charts.workloads import workload_harm_chart

__all__ = [
    "COREDNS_CEILING_S",
    "HEIGHT",
    "REPORT_RIGHT_PADDING",
    "REPORT_THEME",
    "WIDTH",
    "before_after_chart",
    "count_chart",
    "duration_histogram_chart",
    "headline_chart",
    "hop_breakdown_chart",
    "io_graph_chart",
    "ladder_chart",
    "latency_histogram_chart",
    "latency_quantiles_chart",
    "rate_chart",
    "slow_answers_chart",
    "slow_by_chart",
    "state_breakdown_chart",
    "symptom_chart",
    "syn_retransmissions_chart",
    "use_report_renderer",
    "with_change_marker",
    "workload_harm_chart",
]
