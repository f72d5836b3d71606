"""Log-scale histograms: explicit zero bins, step outlines, and labelled vertical rules laid out in
rows so close rules never have overlapping labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts.theme import HEIGHT, WIDTH

# --- log-scale histograms: explicit zero bins and rule labels that do not collide

_RULE_FONT_PX = 10
_RULE_ROW_PX = _RULE_FONT_PX + 4
_RULE_PAD_PX = 3


def _text_px(text: str, font_px: float = _RULE_FONT_PX) -> float:
    """Upper estimate of the width of ``text`` in a sans-serif font (the SVG says "sans-serif",
    so the viewer picks the font): narrow glyphs 0.32 em, m/w/M/W/@ 1 em, other capitals
    0.78 em, anything else 0.64 em (DejaVu Sans digits are 0.636 em, Liberation Sans 0.556 em).
    """
    em = 0.0
    for ch in text:
        if ch in "ijlrtf.,:;|!'` ()[]":
            em += 0.32
        elif ch in "mwMW@%":
            em += 1.0
        elif ch.isupper():
            em += 0.78
        else:
            em += 0.64
    return em * font_px


def _log_domain(*values: pl.Series | Sequence[float]) -> tuple[float, float] | None:
    """Whole decades around the positive finite values (what Vega's ``nice`` log domain gives)."""
    xs = [float(v) for vals in values for v in vals if v is not None and math.isfinite(v) and v > 0]
    if not xs:
        return None
    lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    return 10.0**lo, 10.0 ** max(hi, lo + 1)


def _rule_label_layout(
    rules: Sequence[tuple[float, str]], domain: tuple[float, float], width: int = WIDTH
) -> pl.DataFrame:
    """Place the labels of vertical rules on a log x axis in rows so that no two overlap.

    Each label sits at the top of the plot next to its rule (right of it, or left when it would
    run past the plot's right edge), in the first row where its box (width from :func:`_text_px`) keeps ``_RULE_PAD_PX`` from every label already there. Identical
    (position, text) pairs are drawn once.

    Returns
    -------
    polars.DataFrame
        ``x`` (Float64, seconds), ``label`` (String), ``px`` (Float64, the rule's pixel position),
        ``row`` (Int64, 0 = top), ``side`` (String: ``"right"``: label right of the rule,
        ``"left"``), ``x0_px``, ``x1_px`` (Float64, the label's estimated horizontal extent).
    """
    lo, hi = (math.log10(d) for d in domain)
    seen: set[tuple[float, str]] = set()
    placed: list[dict[str, Any]] = []
    rows: list[list[tuple[float, float]]] = []
    for x, label in sorted(rules, key=lambda r: (r[0], r[1])):
        if (x, label) in seen or not (math.isfinite(x) and x > 0):
            continue
        seen.add((x, label))
        px = width * (math.log10(x) - lo) / (hi - lo)
        w = _text_px(label)
        side = "right" if px + _RULE_PAD_PX + w <= width else "left"
        x0 = px + _RULE_PAD_PX if side == "right" else px - _RULE_PAD_PX - w
        x1 = x0 + w
        row = next(
            (
                i
                for i, boxes in enumerate(rows)
                if all(x1 + _RULE_PAD_PX <= b0 or b1 + _RULE_PAD_PX <= x0 for b0, b1 in boxes)
            ),
            len(rows),
        )
        if row == len(rows):
            rows.append([])
        rows[row].append((x0, x1))
        placed.append(
            {"x": x, "label": label, "px": px, "row": row, "side": side, "x0_px": x0, "x1_px": x1}
        )
    return pl.DataFrame(
        placed,
        schema={
            "x": pl.Float64,
            "label": pl.String,
            "px": pl.Float64,
            "row": pl.Int64,
            "side": pl.String,
            "x0_px": pl.Float64,
            "x1_px": pl.Float64,
        },
    )


def _symlog_counts(
    max_count: float, layout: pl.DataFrame, height: int = HEIGHT
) -> tuple[alt.Scale, alt.Axis]:
    """A symlog y scale and axis for counts, with room at the top for the label rows of ``layout``.

    Vega maps ``y`` to ``height * log1p(y) / log1p(top)``; the tallest value ``max_count`` must
    stay below the rows (``rows * _RULE_ROW_PX + 4`` px), so ``top = expm1(log1p(max_count) *
    height / (height - rows_px))``. Ticks: 0 and the powers of ten up to ``top`` (with 2 and 5
    times them when there are at most two decades), as Vega's own symlog ticks are linear and
    crowd at the top.
    """
    if not (max_count > 0):
        return alt.Scale(type="symlog"), alt.Axis()
    top = float(max_count)
    if layout.height:
        rows_px = (int(cast(int, layout["row"].max())) + 1) * _RULE_ROW_PX + 4
        top = math.expm1(math.log1p(max_count) * height / max(height - rows_px, height / 3))
    decades = math.floor(math.log10(top)) if top >= 1 else 0
    steps = (1, 2, 5) if decades <= 2 else (1,)
    values = [0.0] + [
        float(m * 10**k) for k in range(decades + 1) for m in steps if m * 10**k <= top
    ]
    scale = alt.Scale(type="symlog", domain=[0, top], nice=False)
    return scale, alt.Axis(values=values, format=",~r")


def _rule_layers(layout: pl.DataFrame, x_scale: alt.Scale) -> list[Any]:
    """Dashed red rules at the layout's x positions and their labels (rows from
    :func:`_rule_label_layout`, so no two overlap), each on a white box."""
    if not layout.height:
        return []
    layers: list[Any] = [
        alt.Chart(layout.select("x", "label"))
        .mark_rule(color="firebrick", strokeDash=[6, 3])
        .encode(x=alt.X("x:Q", scale=x_scale), tooltip=["label:N"])
    ]
    # a white box under each label, so the rules and lines it crosses do not strike it through
    boxes = layout.select(
        "label",
        (pl.col("x0_px") - 1).alias("x0_px"),
        (pl.col("x1_px") + 1).alias("x1_px"),
        (1 + _RULE_ROW_PX * pl.col("row")).cast(pl.Float64).alias("y0_px"),
        (1 + _RULE_ROW_PX * pl.col("row") + _RULE_FONT_PX + 3).cast(pl.Float64).alias("y1_px"),
    )
    layers.append(
        alt.Chart(boxes)
        .mark_rect(color="white", opacity=0.85)
        .encode(
            x=alt.X("x0_px:Q", scale=None),
            x2="x1_px:Q",
            y=alt.Y("y0_px:Q", scale=None),
            y2="y1_px:Q",
        )
    )
    for (row, side), part in layout.group_by(["row", "side"], maintain_order=True):
        layers.append(
            alt.Chart(part.select("x", "label", "row", "side"))
            .mark_text(
                align="left" if side == "right" else "right",
                baseline="top",
                dx=_RULE_PAD_PX if side == "right" else -_RULE_PAD_PX,
                dy=2 + _RULE_ROW_PX * int(cast(int, row)),
                color="firebrick",
                fontSize=_RULE_FONT_PX,
            )
            .encode(x=alt.X("x:Q", scale=x_scale), y=alt.value(0), text="label:N")
        )
    return layers


def _step_outline(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Vertices of a histogram outline drawn with ``interpolate="step-after"``, zero across gaps.

    ``df`` has one row per non-empty bin (``lower_s``, ``upper_s``, ``count`` and ``keys``). Each
    run of adjacent bins starts with a vertex at ``(lower_s, 0)`` and ends with one at
    ``(upper_s, 0)``, so an empty bin (a gap between runs) is drawn on the zero line, never as a
    slope, and every bin shows its full width. Returns ``keys``, ``edge_s``, ``count`` and
    ``order`` (the drawing order within a line).
    """
    tol = 1e-9
    d = df.sort([*keys, "lower_s"]).with_columns(
        pl.int_range(pl.len()).over(keys).alias("_i")
        if keys
        else pl.int_range(pl.len()).alias("_i")
    )
    prev_upper = pl.col("upper_s").shift(1)
    next_lower = pl.col("lower_s").shift(-1)
    if keys:
        prev_upper, next_lower = prev_upper.over(keys), next_lower.over(keys)
    d = d.with_columns(
        (
            prev_upper.is_null()
            | ((pl.col("lower_s") - prev_upper).abs() > tol * pl.col("lower_s"))
        ).alias("_start"),
        (
            next_lower.is_null()
            | ((next_lower - pl.col("upper_s")).abs() > tol * pl.col("upper_s"))
        ).alias("_end"),
    )
    cols = [*keys]
    starts = d.filter("_start").select(
        *cols, pl.col("lower_s").alias("edge_s"), pl.lit(0, pl.Int64).alias("count"),
        (pl.col("_i") * 3).alias("order"),
    )  # fmt: skip
    tops = d.select(
        *cols, pl.col("lower_s").alias("edge_s"), pl.col("count").cast(pl.Int64),
        (pl.col("_i") * 3 + 1).alias("order"),
    )  # fmt: skip
    ends = d.filter("_end").select(
        *cols, pl.col("upper_s").alias("edge_s"), pl.lit(0, pl.Int64).alias("count"),
        (pl.col("_i") * 3 + 2).alias("order"),
    )  # fmt: skip
    return pl.concat([starts, tops, ends]).sort([*keys, "order"])
