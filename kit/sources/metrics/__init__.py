"""Metric exports: Prometheus (API JSON, text exposition, OpenMetrics) and Grafana exports.

:func:`kit.read_metrics` (:mod:`kit.sources.metrics.prometheus`) detects the format; the Grafana
parsers (:mod:`kit.sources.metrics.grafana`) and the text parser share :mod:`._common`.
"""
