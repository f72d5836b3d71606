"""What every part of the PromQL engine shares: :class:`PromQLError`, the compatibility modes
(Prometheus 2.x / 3.x semantics), time and step types, the quantile output schema.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TypeAlias

import polars as pl

from kit.errors import KitError

#: ``"2"`` (= 2.42), ``"2.42"`` ... ``"2.55"`` (patch releases allowed: ``"2.53.1"``) or ``"3"``.
Compat: TypeAlias = str


TimeLike: TypeAlias = dt.datetime | str | float | int


StepLike: TypeAlias = dt.timedelta | str | float | int


#: Columns of the metrics frame that are not labels (see ``kit.sources.metrics.prometheus.METRICS_BASE_SCHEMA``).
_BASE_COLUMNS = ("ts", "metric", "value", "source")


_NAME = "__name__"


#: Schema of :func:`histogram_quantile` / :func:`quantile_series` results, after the label columns.
QUANTILE_SCHEMA = pl.Schema(
    {
        "quantile": pl.Float64,
        "value": pl.Float64,
        "bucket_lower": pl.Float64,
        "bucket_upper": pl.Float64,
        "at_ceiling": pl.Boolean,
    }
)


@dataclass(frozen=True)
class _Semantics:
    """What differs between the Prometheus versions the kit models (see the module docstring)."""

    version: tuple[int, int]

    @property
    def left_closed(self) -> bool:  # [t-range, t] windows and lookback (2.x); 3.x: (t-range, t]
        return self.version < (3, 0)

    @property
    def zero_point_first(self) -> bool:  # extrapolatedRate before prometheus#13725 (2.51)
        return self.version < (2, 51)

    @property
    def small_deltas(self) -> bool:  # histogram_quantile ignores deltas <= 1e-12 (#13153, 2.49)
        return self.version >= (2, 49)

    @property
    def kahan_sum(self) -> bool:  # sum() with Kahan summation (#14074, #14362, 2.54)
        return self.version >= (2, 54)

    @property
    def numbers_as_durations(self) -> bool:  # x[600], offset 50, time() - t > 10m (#9138, 2.54)
        return self.version >= (2, 54)

    @property
    def v3(self) -> bool:  # Prometheus 3.x: see the module docstring
        return self.version >= (3, 0)


_LATEST = _Semantics((3, 0))


_COMPAT_RE = re.compile(r"(2|3)(?:\.(\d+)(?:\.\d+)?)?")


def _semantics(compat: Compat) -> _Semantics:
    """``compat`` ("2", "2.53", "2.53.1", "3") -> the semantics; ValueError for anything else."""
    m = _COMPAT_RE.fullmatch(str(compat).strip()) if isinstance(compat, str) else None
    if m is None:
        raise ValueError(
            f"compat must be '2' (Prometheus 2.42), a 2.x version from '2.42' to '2.55' (e.g. "
            f"'2.53'), or '3', got {compat!r}"
        )
    major, minor = int(m.group(1)), m.group(2)
    if major == 3:
        if minor is not None:
            raise ValueError(
                f"compat {compat!r}: use '3' (the kit models current Prometheus 3.x, not a 3.x minor)"
            )
        return _LATEST
    version = 42 if minor is None else int(minor)
    if not 42 <= version <= 55:
        raise ValueError(
            f"compat {compat!r}: the kit models Prometheus 2.42 to 2.55 (and 3); older 2.x differ "
            "in ways it does not reproduce"
        )
    return _Semantics((2, version))


class PromQLError(KitError, ValueError):
    """A PromQL expression that does not parse, is not supported by the kit, or cannot be evaluated.

    Attributes
    ----------
    expr : str
        The expression as given.
    position : int | None
        0-based character offset of the offending construct in ``expr``.
    construct : str | None
        The offending construct (token, function or operator name).
    """

    def __init__(
        self,
        message: str,
        *,
        expr: str = "",
        position: int | None = None,
        construct: str | None = None,
    ) -> None:
        self.expr = expr
        self.position = position
        self.construct = construct
        self.reason = message
        text = message
        if position is not None:
            text = f"{message} at position {position}"
            if expr:
                text += f": {expr[max(0, position - 30) : position]}\u25b6{expr[position : position + 30]}"
        super().__init__(text)
