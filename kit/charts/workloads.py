"""The workloads most hurt (notebooks 02 and 04): slow, unanswered and NXDOMAIN queries per
workload, from :func:`kit.analyses.workloads.workload_outcomes`."""

from __future__ import annotations

from typing import cast

import altair as alt
import polars as pl

from kit.analyses.workloads import workload_label
from kit.charts._base import _check, _title, _to_altair_data
from kit.charts.theme import _LEGEND, WIDTH, label_padding

_OUTCOMES = ("slow", "unanswered", "nxdomain")
_COLORS = ("darkorange", "firebrick", "steelblue")
_RANK = {o: i for i, o in enumerate(_OUTCOMES)}
#: Longest y label drawn (px, vl-convert's metrics); longer names end in an ellipsis.
_LABEL_LIMIT = 300


def workload_harm_chart(
    outcomes: pl.DataFrame,
    *,
    top: int = 10,
    title: str | None = None,
) -> alt.Chart:
    """The most hurt workloads as horizontal stacked bars: slow, unanswered, NXDOMAIN queries.

    Parameters
    ----------
    outcomes
        :func:`kit.analyses.workloads.workload_outcomes` output (already in order: most hurt first).
    top
        How many groups with at least one such query to draw (the title says how many more
        there are). Unattributed clients (``(node_ip)``...) are drawn like workloads.
    title
        Chart title; default "Workloads with the most slow, unanswered or NXDOMAIN queries".

    Returns
    -------
    altair.Chart
        Bars (x: queries, stacked by outcome; y: workload labels as data, in the frame's order),
        tooltips with each count and the workload's total queries. A groups-free frame gives an
        empty chart whose subtitle says so.
    """
    _check(outcomes, ["attribution", "queries", *_OUTCOMES], "workload_harm_chart")
    df = outcomes.with_columns(workload=workload_label(outcomes)).filter(
        pl.sum_horizontal(*_OUTCOMES) > 0
    )
    notes = []
    if df.height > top:
        notes.append(f"{df.height - top} more group(s) with such queries not drawn")
    if df.is_empty():
        notes.append("no slow, unanswered or NXDOMAIN query")
    df = df.head(top)
    order = df["workload"].to_list()
    long = (
        df.select("workload", "queries", *_OUTCOMES)
        .unpivot(
            index=["workload", "queries"],
            on=list(_OUTCOMES),
            variable_name="outcome",
            value_name="n",
        )
        .with_columns(rank=pl.col("outcome").replace_strict(_RANK, return_dtype=pl.UInt8))
    )
    chart = (
        alt.Chart(_to_altair_data(long))
        .mark_bar()
        .encode(
            x=alt.X("n:Q", title="queries", stack="zero"),
            y=alt.Y("workload:N", title=None, sort=order, axis=alt.Axis(labelLimit=_LABEL_LIMIT)),
            color=alt.Color(
                "outcome:N",
                title="outcome",
                scale=alt.Scale(domain=list(_OUTCOMES), range=list(_COLORS)),
                legend=_LEGEND,
            ),
            order=alt.Order("rank:Q"),
            tooltip=[
                alt.Tooltip("workload:N"),
                alt.Tooltip("outcome:N"),
                alt.Tooltip("n:Q", title="queries with this outcome"),
                alt.Tooltip("queries:Q", title="all its queries"),
            ],
        )
        .properties(
            width=WIDTH,
            height=max(60, 20 * max(len(order), 1)),
            padding=label_padding(_LABEL_LIMIT),
            title=_title(
                title or "Workloads with the most slow, unanswered or NXDOMAIN queries", notes
            ),
        )
    )
    return cast(alt.Chart, chart)
