"""Where the time went, per hop: charts (and their data) of a per-query ledger
(:func:`kit.ledger`, :data:`kit.analyses.ledger.LEDGER_SCHEMA`).

- :func:`hop_breakdown_chart`: the slowest client queries, one horizontal stacked bar each, split
  into the ledger's segments (in the cache before asking upstream, TCP connect, upstream, back
  through the cache; the whole latency for a cache hit), the query's state as a marker at the
  bar's end, the client timeout as a rule;
- :func:`state_breakdown` and :func:`state_breakdown_chart`: per state, how many queries and the
  median share of their time in each segment;
- :func:`describe_breakdown` and :func:`time_went_line`: the same in words, computed from the
  ledger (the notebook's narration and the report header's one line).

Names, clients and states travel as data under fixed field names, never as field names, titles
or Vega expressions, so a qname such as ``<script>`` or one with quotes is drawn as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import altair as alt
import polars as pl

from kit.charts._base import _check, _fmt_short, _title, _to_altair_data
from kit.charts.theme import _LEGEND, WIDTH, label_padding

__all__ = [
    "BREAKDOWN_SCHEMA",
    "SEGMENTS",
    "STATES",
    "STATE_BREAKDOWN_SCHEMA",
    "breakdown_frame",
    "describe_breakdown",
    "has_upstream_leg",
    "hop_breakdown_chart",
    "state_breakdown",
    "state_breakdown_chart",
    "time_went_line",
]

SEGMENTS: tuple[tuple[str, str], ...] = (
    ("cache_s", "answered from the cache"),
    ("before_up_s", "in the cache, before asking upstream"),
    ("connect_s", "TCP connect / SYN retransmissions"),
    ("up_s", "upstream"),
    ("up_unanswered_s", "upstream, no answer seen"),
    ("after_up_s", "back through the cache"),
)
"""The ledger's breakdown columns (float seconds) and how the charts name them, in drawing order
(left to right within a bar). ``up_unanswered_s`` is derived here, not a ledger column: for an
answered query whose upstream leg never answered (the cache answered by itself, e.g. SERVFAIL
after its retries), the ledger's ``up_s`` and ``after_up_s`` are null and this is the rest of
the latency, ``latency_s - before_up_s - connect_s``."""

_LEDGER_SEGMENTS = ("cache_s", "before_up_s", "connect_s", "up_s", "after_up_s")

_SEGMENT_PHRASES = {
    "cache_s": "answering from the cache",
    "before_up_s": "in the cache before it asked upstream",
    "connect_s": "in TCP connect (SYN retransmissions)",
    "up_s": "waiting on the upstream",
    "up_unanswered_s": "waiting on the upstream with no answer seen",
    "after_up_s": "on the way back through the cache",
}
"""How the text names where time went (``median 3 s of 3.1 s in TCP connect ...``)."""

_SEGMENT_COLOURS = ("#9e9e9e", "#f2b701", "#d62728", "#1f77b4", "#9ecae1", "#8fbc8f")

STATES: tuple[tuple[str, str], ...] = (
    ("unanswered", "got no answer"),
    ("after_give_up", "were answered after the client gave up"),
    ("syn_wait", "waited on retransmitted SYNs"),
    ("tc_fallback", "fell back to TCP after a truncated answer"),
    ("retried", "were asked again by the client before the answer"),
    ("forwarded", "were forwarded upstream"),
    ("cache_hit", "were answered from the cache"),
)
"""The ledger's states in its precedence order, each with what it says about the queries."""

_STATE_SHAPES = (
    "cross",
    "triangle-up",
    "diamond",
    "square",
    "triangle-down",
    "circle",
    "triangle-right",
)

_LABEL_CHARS = 56
"""Characters of a bar's label (``rank. qname qtype ← client``) before an ellipsis."""

_BAR_PX = 18
#: Width (px) the y labels of the bars may take before an ellipsis.
_LABEL_LIMIT = 360

_QUERY_COLUMNS = (
    "query_id",
    "ts",
    "latency_s",
    "answered",
    "client_ip",
    "qname",
    "qtype",
    "state",
    *_LEDGER_SEGMENTS,
)

BREAKDOWN_SCHEMA = pl.Schema(
    {
        "rank": pl.UInt32(),
        "query_id": pl.UInt64(),
        "source": pl.String(),
        "label": pl.String(),
        "qname": pl.String(),
        "qtype": pl.String(),
        "client_ip": pl.String(),
        "state": pl.String(),
        "latency_s": pl.Float64(),
        "segment": pl.String(),
        "segment_label": pl.String(),
        "order": pl.UInt32(),
        "start_s": pl.Float64(),
        "end_s": pl.Float64(),
        "seconds": pl.Float64(),
    }
)
"""Schema of :func:`breakdown_frame`: one row per (query, segment that applies)."""

STATE_BREAKDOWN_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "state": pl.String(),
        "queries": pl.UInt32(),
        "share": pl.Float64(),
        "answered": pl.UInt32(),
        "median_latency_s": pl.Float64(),
        **{f"{c}_share": pl.Float64() for c, _ in SEGMENTS},
        **{f"median_{c}": pl.Float64() for c, _ in SEGMENTS},
    }
)
"""Schema of :func:`state_breakdown`: one row per source and state present."""

_SOURCE_ORDER = ("capture", "dnstap", "coredns")


def _sources(queries: pl.DataFrame) -> list[str]:
    """The ledger's sources present (``capture``, ``dnstap``, ``coredns``, in that order)."""
    if "source" not in queries.columns or not queries.height:
        return []
    found = set(queries["source"].drop_nulls().unique().to_list())
    return [s for s in _SOURCE_ORDER if s in found] + sorted(found - set(_SOURCE_ORDER))


def _with_source(queries: pl.DataFrame) -> pl.DataFrame:
    if "source" in queries.columns:
        return queries.with_columns(pl.col("source").fill_null("(none)"))
    return queries.with_columns(pl.lit("(none)").alias("source"))


def _derive(queries: pl.DataFrame) -> pl.DataFrame:
    """``queries`` with ``up_unanswered_s`` (see :data:`SEGMENTS`)."""
    if "up_unanswered_s" in queries.columns:
        return queries
    return queries.with_columns(
        pl.when(
            pl.col("answered").fill_null(False)
            & pl.col("up_s").is_null()
            & pl.col("before_up_s").is_not_null()
        )
        .then(pl.col("latency_s") - pl.col("before_up_s") - pl.col("connect_s").fill_null(0.0))
        .alias("up_unanswered_s")
    )


def _truncate(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _answered(queries: pl.DataFrame) -> pl.DataFrame:
    """Answered queries with a finite latency (what a bar can be drawn for)."""
    return queries.filter(
        pl.col("answered").fill_null(False)
        & pl.col("latency_s").is_not_null()
        & pl.col("latency_s").is_finite()
    )


def breakdown_frame(queries: pl.DataFrame, *, top: int = 30) -> pl.DataFrame:
    """The data of :func:`hop_breakdown_chart`: the ``top`` slowest answered client queries, long
    form, one row per segment that applies to the query.

    Parameters
    ----------
    queries
        A ledger's ``queries`` (:data:`kit.analyses.ledger.LEDGER_SCHEMA`; at least ``query_id``,
        ``ts``, ``latency_s``, ``answered``, ``client_ip``, ``qname``, ``qtype``, ``state`` and the
        breakdown columns ``cache_s``, ``before_up_s``, ``connect_s``, ``up_s``, ``after_up_s``).
    top
        How many queries, slowest first (ties: earlier first).

    Returns
    -------
    polars.DataFrame
        :data:`BREAKDOWN_SCHEMA`: ``rank`` (1 = slowest), ``query_id``, ``source`` (the ledger's:
        ``capture``, ``dnstap``, ``coredns``), ``label`` (``"rank. qname qtype ← client_ip"``,
        with ``[source]`` after the rank when the ledger holds several sources, which see the same
        query each; cut to 56 characters with an ellipsis: unique per bar), ``qname``,
        ``qtype``, ``client_ip``, ``state``, ``latency_s`` (the client's latency, seconds),
        ``segment`` (the ledger column), ``segment_label`` (its name in the chart, see
        :data:`SEGMENTS`), ``order`` (its position in :data:`SEGMENTS`), ``start_s`` and
        ``end_s`` (the segment's extent on the bar, seconds after the client's query: the
        segments before it, then its own seconds, cut to ``0 .. latency_s``), ``seconds`` (its
        length in the ledger). A segment that is null (does not apply) has no row. A negative
        ``before_up_s`` (a client that joined an upstream query already outstanding: the leg
        began before the client asked) moves the later segments left, and what falls before
        the client's query is cut, so every bar ends at its latency. Unanswered queries have no
        bar (no end time).
    """
    _check(queries, _QUERY_COLUMNS, "breakdown_frame")
    several = len(_sources(queries)) > 1
    slow = (
        _answered(_derive(_with_source(queries)))
        .sort(["latency_s", "ts", "query_id"], descending=[True, False, False], nulls_last=True)
        .head(max(int(top), 0))
        .with_row_index("rank", offset=1)
    )
    labels = [
        _truncate(
            f"{r}. {f'[{src}] ' if several else ''}{n if n is not None else '(none)'} {t or ''}"
            f" ← {c or '(none)'}"
        )
        for r, src, n, t, c in zip(
            slow["rank"],
            slow["source"],
            slow["qname"],
            slow["qtype"],
            slow["client_ip"],
            strict=True,
        )
    ]
    slow = slow.with_columns(pl.Series("label", labels, dtype=pl.String))
    long = slow.unpivot(
        index=[
            "rank",
            "query_id",
            "source",
            "label",
            "qname",
            "qtype",
            "client_ip",
            "state",
            "latency_s",
        ],
        on=[c for c, _ in SEGMENTS],
        variable_name="segment",
        value_name="seconds",
    )
    order = pl.DataFrame(
        {
            "segment": [c for c, _ in SEGMENTS],
            "segment_label": [label for _, label in SEGMENTS],
            "order": list(range(len(SEGMENTS))),
        },
        schema={"segment": pl.String, "segment_label": pl.String, "order": pl.UInt32},
    )
    long = (
        long.join(order, on="segment", how="left")
        .filter(pl.col("seconds").is_not_null() & pl.col("seconds").is_finite())
        .sort(["rank", "order"])
        .with_columns(pl.col("seconds").cum_sum().over("rank").alias("_end"))
        .with_columns(
            # on the client's own timeline (0 = its query, latency_s = its answer): a segment
            # outside it (a coalesced query's leg began before the client asked) is cut there
            start_s=(pl.col("_end") - pl.col("seconds")).clip(0.0, pl.col("latency_s")),
            end_s=pl.col("_end").clip(0.0, pl.col("latency_s")),
        )
    )
    return long.select([pl.col(n).cast(t) for n, t in BREAKDOWN_SCHEMA.items()]).match_to_schema(
        BREAKDOWN_SCHEMA
    )


def hop_breakdown_chart(
    queries: pl.DataFrame,
    *,
    top: int = 30,
    client_timeout_s: float | None = None,
    title: str = "Where the time went, per hop: the slowest client queries",
) -> alt.LayerChart:
    """The slowest client queries as horizontal stacked bars split by hop.

    Parameters
    ----------
    queries
        A ledger's ``queries`` (see :func:`breakdown_frame`).
    top
        How many of the slowest answered queries get a bar.
    client_timeout_s
        A dashed black rule at this many seconds (the TCP segment is red), named in the subtitle (``None``: no rule).
    title
        Chart title; the subtitle says how many queries are drawn, of how many, and how many
        unanswered ones have no bar.

    Returns
    -------
    altair.LayerChart
        One bar per query (y: ``label``, slowest on top), its segments from ``start_s`` to
        ``end_s`` (seconds, x) coloured by ``segment_label`` (fixed colours per segment); a point
        at ``latency_s`` shaped by the query's ``state``; the client-timeout rule (data ``x``,
        ``label``). An empty ledger gives the chart with the subtitle "no answered query".
    """
    data = breakdown_frame(queries, top=top)
    answered = _answered(queries).height
    unanswered = int(queries["answered"].fill_null(False).not_().sum()) if queries.height else 0
    bars = data["rank"].n_unique() if data.height else 0
    notes = []
    if bars:
        notes.append(
            f"the {bars} slowest of {answered} answered client queries"
            if bars < answered
            else f"all {answered} answered client queries"
        )
    else:
        notes.append("no answered query to draw")
    if unanswered:
        notes.append(f"{unanswered} unanswered not drawn (no end time)")
    segments = [label for _, label in SEGMENTS]
    states = [s for s, _ in STATES]
    order = data.select("rank", "label").unique().sort("rank")["label"].to_list()
    y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=_LABEL_LIMIT))
    x_title = "seconds from the client's query (stacked by hop)"
    tooltip = [
        alt.Tooltip("qname:N", title="name"),
        alt.Tooltip("qtype:N", title="type"),
        alt.Tooltip("client_ip:N", title="client"),
        alt.Tooltip("state:N"),
        alt.Tooltip("segment_label:N", title="segment"),
        alt.Tooltip("seconds:Q", format=".4~g", title="segment (s)"),
        alt.Tooltip("latency_s:Q", format=".4~g", title="latency (s)"),
    ]
    layers: list[Any] = [
        alt.Chart(_to_altair_data(data))
        .mark_bar(height=_BAR_PX - 4)
        .encode(
            x=alt.X("start_s:Q", title=x_title),
            x2="end_s:Q",
            y=y,
            color=alt.Color(
                "segment_label:N",
                title="segment",
                scale=alt.Scale(domain=segments, range=list(_SEGMENT_COLOURS)),
                legend=_LEGEND,
            ),
            order=alt.Order("order:Q"),
            tooltip=tooltip,
        )
    ]
    ends = data.group_by("rank").agg(
        pl.col("label").first(),
        pl.col("state").first(),
        pl.col("latency_s").first(),
        pl.col("qname").first(),
    )
    layers.append(
        alt.Chart(_to_altair_data(ends))
        .mark_point(filled=True, size=50, color="black")
        .encode(
            x=alt.X("latency_s:Q"),
            y=y,
            shape=alt.Shape(
                "state:N",
                title="state",
                scale=alt.Scale(domain=states, range=list(_STATE_SHAPES)),
                legend=_LEGEND,
            ),
            tooltip=[alt.Tooltip("qname:N", title="name"), "state:N", "latency_s:Q"],
        )
    )
    if client_timeout_s is not None and math.isfinite(client_timeout_s):
        label = f"client timeout {_fmt_short(client_timeout_s)}"
        rule = pl.DataFrame({"x": [float(client_timeout_s)], "label": [label]})
        layers.append(
            alt.Chart(rule)
            .mark_rule(color="black", strokeDash=[6, 3], strokeWidth=1.5)
            .encode(x="x:Q", tooltip=["label:N"])
        )
        notes.append(f"dashed black rule: {label}")
    chart = alt.layer(*layers).properties(
        width=WIDTH,
        height=max(60, _BAR_PX * max(bars, 1)),
        padding=label_padding(_LABEL_LIMIT),
        title=_title(title, ["; ".join(notes)]),
    )
    return cast(alt.LayerChart, chart)


def state_breakdown(queries: pl.DataFrame) -> pl.DataFrame:
    """Per state: how many queries, and where their time went (median shares and seconds).

    Parameters
    ----------
    queries
        A ledger's ``queries`` (``state``, ``answered``, ``latency_s`` and the breakdown columns).

    Returns
    -------
    polars.DataFrame
        :data:`STATE_BREAKDOWN_SCHEMA`, one row per source and state present (sources in the
        order capture, dnstap, coredns: each sees the same queries from its vantage, so counts
        are per source; states in the ledger's precedence order, :data:`STATES`): ``source``,
        ``state``, ``queries`` (client queries in that state), ``share`` (of the source's rows,
        0-1), ``answered`` (of them, answered), ``median_latency_s``
        (answered ones, seconds), ``<segment>_share`` (median over the answered queries of the
        segment's seconds / the query's latency, 0-1; null when the segment does not apply to
        any of them; medians need not add up to 1) and ``median_<segment>`` (median seconds).
    """
    _check(queries, ["state", "answered", "latency_s", *_LEDGER_SEGMENTS], "state_breakdown")
    queries = _derive(_with_source(queries))
    answered = pl.col("answered").fill_null(False) & pl.col("latency_s").is_finite()
    positive = answered & (pl.col("latency_s") > 0)
    out = (
        queries.group_by("source", "state")
        .agg(
            pl.len().cast(pl.UInt32).alias("queries"),
            answered.sum().cast(pl.UInt32).alias("answered"),
            pl.col("latency_s").filter(answered).median().alias("median_latency_s"),
            *[
                (pl.col(c) / pl.col("latency_s")).filter(positive).median().alias(f"{c}_share")
                for c, _ in SEGMENTS
            ],
            *[pl.col(c).filter(answered).median().alias(f"median_{c}") for c, _ in SEGMENTS],
        )
        .with_columns((pl.col("queries") / pl.col("queries").sum().over("source")).alias("share"))
    )
    rank = {s: i for i, (s, _) in enumerate(STATES)}
    src = {s: i for i, s in enumerate(_SOURCE_ORDER)}
    out = out.with_columns(
        pl.col("source").replace_strict(src, default=len(src), return_dtype=pl.Int64).alias("_s"),
        pl.col("state").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_o"),
    ).sort(["_s", "source", "_o", "state"])
    return out.select([pl.col(n).cast(t) for n, t in STATE_BREAKDOWN_SCHEMA.items()])


def state_breakdown_chart(
    queries: pl.DataFrame, *, title: str = "Where the time went, per state"
) -> alt.Chart:
    """Per state, the median share of the queries' time in each segment, as a stacked bar.

    Parameters
    ----------
    queries
        A ledger's ``queries`` (see :func:`state_breakdown`).
    title
        Chart title.

    Returns
    -------
    altair.Chart
        One bar per state (y ``label``: ``"state (N queries)"``, precedence order), segments
        (x, percent) from ``start`` to ``end`` coloured by ``segment_label``, with ``share`` the
        median share in percent.
    """
    table = state_breakdown(queries)
    several = table["source"].n_unique() > 1
    labels = [
        ("[" + r["source"] + "] " if several else "") + f"{r['state']} "
        f"({r['queries']:,} quer{'y' if r['queries'] == 1 else 'ies'})"
        for r in table.iter_rows(named=True)
    ]
    rows = []
    for r, label in zip(table.iter_rows(named=True), labels, strict=True):
        start = 0.0
        for i, (c, seg_label) in enumerate(SEGMENTS):
            share = r[f"{c}_share"]
            if share is None or not math.isfinite(share):
                continue
            pct = max(share, 0.0) * 100
            rows.append((r["state"], label, c, seg_label, i, pct, start, start + pct))
            start += pct
    data = pl.DataFrame(
        rows,
        schema={
            "state": pl.String,
            "label": pl.String,
            "segment": pl.String,
            "segment_label": pl.String,
            "order": pl.UInt32,
            "share": pl.Float64,
            "start": pl.Float64,
            "end": pl.Float64,
        },
        orient="row",
    )
    order = labels
    notes = ["median share of each answered query's latency; medians need not add up to 100 %"]
    no_bar = table.filter(pl.col("answered") == 0)["state"].to_list()
    if no_bar:
        notes.append(f"no bar for {', '.join(no_bar)}: no answered query")
    chart = (
        alt.Chart(_to_altair_data(data))
        .mark_bar(height=_BAR_PX - 4)
        .encode(
            x=alt.X("start:Q", title="median share of the query's latency (%)"),
            x2="end:Q",
            y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=_LABEL_LIMIT)),
            color=alt.Color(
                "segment_label:N",
                title="segment",
                scale=alt.Scale(
                    domain=[label for _, label in SEGMENTS], range=list(_SEGMENT_COLOURS)
                ),
                legend=_LEGEND,
            ),
            tooltip=[
                "state:N",
                alt.Tooltip("segment_label:N", title="segment"),
                alt.Tooltip("share:Q", format=".3~g", title="median share (%)"),
            ],
        )
        .properties(
            width=WIDTH,
            height=max(60, _BAR_PX * max(len(order), 1)),
            padding=label_padding(_LABEL_LIMIT),
            title=_title(title, ["; ".join(notes)]),
        )
    )
    return cast(alt.Chart, chart)


def has_upstream_leg(queries: pl.DataFrame) -> bool:
    """Whether any query of a ledger was forwarded (has an upstream leg to split its time by):
    without one, :func:`hop_breakdown_chart` would only show whole latencies, and
    :func:`describe_breakdown` says why there is no split instead."""
    if "forwarded" in queries.columns:
        return bool(queries["forwarded"].fill_null(False).any())
    return "up_ts" in queries.columns and bool(queries["up_ts"].is_not_null().any())


def _dominant(row: dict[str, Any]) -> tuple[str, str, float] | None:
    """The segment with the largest median seconds in a :func:`state_breakdown` row."""
    best: tuple[str, str, float] | None = None
    for c, label in SEGMENTS:
        v = row.get(f"median_{c}")
        if v is not None and math.isfinite(v) and (best is None or v > best[2]):
            best = (c, label, float(v))
    return best


def _state_phrase(state: str | None, n: int = 2) -> str:
    """What :data:`STATES` says about ``n`` queries in ``state`` ("was" for one)."""
    if state is None:
        phrase = "were in no state the ledger could tell (no upstream side seen)"
    else:
        phrase = dict(STATES).get(state, f"were in state {state}")
    return "was" + phrase[4:] if n == 1 and phrase.startswith("were ") else phrase


def _primary(queries: pl.DataFrame) -> tuple[pl.DataFrame, str, list[str]]:
    """The rows of the source the text speaks for (the one with the most rows with an upstream
    leg; ties: capture, dnstap, coredns), its name, and the other sources present."""
    sources = _sources(queries)
    if len(sources) <= 1:
        return queries, (sources[0] if sources else ""), []
    legs = [
        (
            -int(queries.filter(pl.col("source") == src)["forwarded"].fill_null(False).sum())
            if "forwarded" in queries.columns
            else 0,
            i,
            src,
        )
        for i, src in enumerate(sources)
    ]
    best = min(legs)[2]
    return queries.filter(pl.col("source") == best), best, [s for s in sources if s != best]


def time_went_line(queries: pl.DataFrame, *, slow_s: float | None = None) -> str:
    """One line for the report's header: where the slow queries' time went.

    For example ``"of 131 client queries slower than 1 s or unanswered, 128 waited on retransmitted SYNs:
    median 3.0 s of 3.1 s in TCP connect (SYN retransmissions)"``. The state is the most common
    one among the rows (ties: the ledger's precedence); the figures are those of its median
    answered query (its largest segment of its latency); when none of those was answered (most got no
    answer), the most common answered state follows with its own. '' when ``queries`` is empty. When the ledger holds
    several sources (a capture and dnstap see the same queries), the line counts the rows of one
    (the one with the most forwarded queries) and names it: ``"(seen by the capture)"``.

    Parameters
    ----------
    queries
        A ledger's ``queries`` (``kit.ledger(..., slow_s=...)``: the slow or unanswered ones).
    slow_s
        The threshold the ledger was built with, named in the line ("at least 1 s") when given.
    """
    if not queries.height:
        return ""
    queries, source, others = _primary(queries)
    table = state_breakdown(queries)
    top = table.sort("queries", descending=True, maintain_order=True).row(0, named=True)
    what = "client quer" + ("y" if queries.height == 1 else "ies")
    if slow_s is not None:
        what = (
            f"client quer{'y' if queries.height == 1 else 'ies'} "
            f"slower than {_fmt_short(slow_s)} or unanswered"
        )
    seen = f" (seen by the {source})" if others else ""
    line = (
        f"of {queries.height:,} {what}{seen}, {top['queries']:,} "
        f"{_state_phrase(top['state'], top['queries'])}"
    )
    line += _where(queries, top["state"])
    if not top["answered"]:
        # most got no answer: say where the time of the most common answered state went too
        ranked = table.filter(pl.col("answered") > 0).sort(
            "queries", descending=True, maintain_order=True
        )
        if ranked.height:
            nxt = ranked.row(0, named=True)
            line += f"; {nxt['queries']:,} {_state_phrase(nxt['state'], nxt['queries'])}"
            line += _where(queries, nxt["state"])
    return line


def _where(queries: pl.DataFrame, state: str | None) -> str:
    """Where the median query of ``state`` spent its time: ``": median 3.0 s of 3.1 s in TCP
    connect ..."``, the largest segment of the answered query of that state with the median
    latency (the lower one of an even count), so the two figures belong to one query. '' when
    none of them was answered."""
    rows = _answered(_derive(queries)).filter(pl.col("state").eq_missing(state)).sort("latency_s")
    if not rows.height:
        return ""
    mid = rows.row((rows.height - 1) // 2, named=True)
    seg = _dominant({f"median_{c}": mid[c] for c, _ in SEGMENTS})
    if seg is None:
        return ""
    return (
        f": median {_fmt_short(seg[2])} of {_fmt_short(mid['latency_s'])} "
        f"{_SEGMENT_PHRASES[seg[0]]}"
    )


def describe_breakdown(
    queries: pl.DataFrame,
    notes: Sequence[str] = (),
    *,
    slow_s: float | None = None,
    client_timeout_s: float | None = None,
) -> list[str]:
    """Two to four sentences saying what :func:`hop_breakdown_chart` shows, from the data (for a
    ledger of several sources: about the one :func:`time_went_line` speaks for, and one sentence
    per other source).

    Parameters
    ----------
    queries
        A ledger's ``queries``.
    notes
        The ledger's ``notes`` (what could not be joined): a note about the upstream hop is
        repeated when no query was forwarded, since then the chart cannot split the time.
    slow_s, client_timeout_s
        The thresholds the ledger was built with (named in the text when given).

    Returns
    -------
    list[str]
        Plain sentences (the caller escapes them for HTML): how many queries and in which
        states, where the most common state's time went, the slowest query, and why there is no
        split when no query has an upstream leg.
    """
    if not queries.height:
        what = "no client query was slow or unanswered" if slow_s is not None else "no client query"
        if slow_s is not None:
            what = f"no client query took {_fmt_short(slow_s)} or more, and none went unanswered"
        return [f"In this ledger {what}: there is no time to break down."]
    out = [time_went_line(queries, slow_s=slow_s)]
    out[0] = out[0][0].upper() + out[0][1:] + "."
    everything = queries
    queries, _, other_sources = _primary(queries)
    table = state_breakdown(queries)
    rest = table.sort("queries", descending=True, maintain_order=True).slice(1)
    rest = rest.filter(
        ~pl.format("{} {}", pl.col("queries"), pl.col("state")).is_in(
            [f"{r['queries']} {r['state']}" for r in rest.iter_rows(named=True) if
             f"{r['queries']:,} {_state_phrase(r['state'], r['queries'])}" in out[0]]
        )
    )  # fmt: skip
    others = [
        f"{r['queries']:,} {_state_phrase(r['state'], r['queries'])}"
        for r in rest.head(3).iter_rows(named=True)
    ]
    if rest.height > 3:
        others.append(f"{int(rest['queries'].slice(3).sum()):,} more in other states")
    if others:
        out[0] = out[0][:-1] + "; " + ", ".join(others) + "."
    answered = _answered(_derive(queries))
    if answered.height:
        slowest = answered.sort("latency_s", descending=True).row(0, named=True)
        seg = _dominant({f"median_{c}": slowest[c] for c, _ in SEGMENTS})
        sentence = (
            f"The slowest answer, {slowest['qname']} {slowest['qtype']} from "
            f"{slowest['client_ip']}, took {_fmt_short(slowest['latency_s'])}"
        )
        if seg is not None:
            sentence += f", {_fmt_short(seg[2])} of it {_SEGMENT_PHRASES[seg[0]]}"
        if client_timeout_s is not None and slowest["latency_s"] > client_timeout_s:
            late = int((answered["latency_s"] > client_timeout_s).sum())
            sentence += (
                f"; {late:,} answer{'s' if late != 1 else ''} came after the client's "
                f"{_fmt_short(client_timeout_s)} timeout"
            )
        out.append(sentence + ".")
    for other in other_sources:
        rows = everything.filter(pl.col("source") == other)
        legs = int(rows["forwarded"].fill_null(False).sum()) if "forwarded" in rows.columns else 0
        out.append(
            f"The {other} holds {rows.height:,} such quer{'y' if rows.height == 1 else 'ies'} "
            f"too, {legs:,} with an upstream leg: the same queries seen from its vantage, drawn "
            f"and counted apart (marked [{other}])."
        )
    hits = "cache_hit" in queries.columns and bool(queries["cache_hit"].fill_null(False).all())
    why = next(
        (n for n in notes if "no upstream hop" in n.lower()),
        next((n for n in notes if "upstream" in n.lower()), ""),
    )
    if not has_upstream_leg(queries) and (why or not hits):
        out.append(
            "No query has an upstream leg, so the time cannot be split by hop"
            + (f" ({why.rstrip('.')})." if why else ".")
        )
    return out
