"""Layer 1, sources: one reader per input kind (files in, polars frames out).

The readers import only the foundation (:mod:`kit.errors`, :mod:`kit.schema`, :mod:`kit.net`,
:mod:`kit.timeutil`, :mod:`kit.stats`) and each other's private helpers within this layer.
"""
