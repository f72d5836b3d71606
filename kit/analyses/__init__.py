"""Layer 2, analyses: frames in, frames out (latency, upstream/TCP, resolver logs, metrics).

Analyses read the frames of :mod:`kit.sources` and never render or decide (that is
:mod:`kit.findings`, :mod:`kit.charts`, :mod:`kit.report`).
"""
