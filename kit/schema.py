"""Check frames against the documented schema constants of the loaders."""

from __future__ import annotations

import polars as pl

from kit.errors import SchemaError

__all__ = ["check_schema", "empty_frame"]


def check_schema(
    df: pl.DataFrame, schema: pl.Schema | dict[str, pl.DataType], *, name: str = "frame"
) -> None:
    """Raise :class:`~kit.errors.SchemaError` unless ``df`` has exactly ``schema`` (names, order, dtypes).

    Extra columns are allowed only if they come after the schema's columns; they are listed in the
    message when the check fails for another reason.
    """
    want = pl.Schema(schema)
    got = df.schema
    missing = [c for c in want if c not in got]
    wrong = [f"{c}: {got[c]} (want {want[c]})" for c in want if c in got and got[c] != want[c]]
    order_ok = list(got)[: len(want)] == list(want)
    if missing or wrong or not order_ok:
        extra = [c for c in got if c not in want]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if wrong:
            parts.append(f"wrong dtype {wrong}")
        if not missing and not order_ok:
            parts.append(f"column order {list(got)[: len(want)]} != {list(want)}")
        if extra:
            parts.append(f"extra {extra}")
        raise SchemaError(f"{name} does not match its schema: " + "; ".join(parts))


def empty_frame(schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly ``schema``: the only way a loader says "the input had no rows"."""
    return pl.DataFrame(schema=pl.Schema(schema))
