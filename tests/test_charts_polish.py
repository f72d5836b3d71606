"""kit.charts, readability of the rendered charts (static SVG from vl-convert, as in the report):
time-axis labels that follow the span, histograms whose empty bins read as zero, rule labels
that never overlap, and the before/after chart's per-period segments and scale.

Positions are read from the SVG itself (text transforms, path data); text widths come from the
renderer (a probe chart whose axis title moves by the width of its labels), not from the kit's own
width estimate.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from typing import Any

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from kit import charts
from kit.analyses import resolver_logs as logs
from kit.analyses import upstream as up
from kit.charts import _histogram

SVG = "{http://www.w3.org/2000/svg}"
UTC = dt.UTC
T0 = dt.datetime(2026, 11, 26, 6, 8, 45, 712000, tzinfo=UTC)  # like the bundled sample
CLOCK_S = re.compile(r"^\d\d:\d\d:\d\d$")
CLOCK_M = re.compile(r"^\d\d:\d\d$")


# --- reading the SVG


def render(chart: alt.TopLevelMixin) -> ET.Element:
    return ET.fromstring(vlc.vegalite_to_svg(chart.to_json()))


def translate(el: ET.Element) -> tuple[float, float]:
    m = re.search(r"translate\(([-\d.e]+),([-\d.e]+)\)", el.get("transform", ""))
    assert m, el.attrib
    return float(m.group(1)), float(m.group(2))


def axis_labels(root: ET.Element, axis: str) -> list[tuple[str, float]]:
    """(text, position along the axis) of the tick labels of the ``X`` or ``Y`` axis, in order."""
    for g in root.iter(f"{SVG}g"):
        if (g.get("aria-label") or "").startswith(f"{axis}-axis"):
            for sub in g.iter(f"{SVG}g"):
                if "role-axis-label" in (sub.get("class") or ""):
                    out = []
                    for t in sub.iter(f"{SVG}text"):
                        if t.get("opacity", "1") == "0":
                            continue  # hidden by the renderer's overlap removal
                        x, y = translate(t)
                        out.append(("".join(t.itertext()), x if axis == "X" else y))
                    return out
    raise AssertionError(f"no {axis} axis in the SVG")


def marks(root: ET.Element, role: str) -> list[ET.Element]:
    """SVG elements of one mark type (``line mark``, ``rule mark``, ``text mark``...)."""
    return [el for el in root.iter() if el.get("aria-roledescription") == role]


def path_points(d: str) -> list[tuple[float, float]]:
    """The vertices of an SVG path made of M/L/H/V (absolute) commands, as Vega writes lines."""
    pts: list[tuple[float, float]] = []
    x = y = 0.0
    for cmd, args in re.findall(r"([MLHVZ])([^MLHVZ]*)", d):
        nums = [float(n) for n in re.findall(r"-?[\d.]+(?:e-?\d+)?", args)]
        if cmd in "ML":
            for i in range(0, len(nums), 2):
                x, y = nums[i], nums[i + 1]
                pts.append((x, y))
        elif cmd == "H":
            for n in nums:
                x = n
                pts.append((x, y))
        elif cmd == "V":
            for n in nums:
                y = n
                pts.append((x, y))
    return pts


def _title_x(label: str, font_px: float) -> float:
    chart = (
        alt.Chart(pl.DataFrame({"y": [label], "x": [1]}))
        .mark_point()
        .encode(
            x="x:Q",
            y=alt.Y("y:N", title="T", axis=alt.Axis(labelFontSize=font_px, labelLimit=0)),
        )
    )
    sg = json.dumps(vlc.vegalite_to_scenegraph(chart.to_json()))
    m = re.search(r'"text": "T"[^}]*"x": (-?[\d.]+)', sg)
    assert m
    return float(m.group(1))


@cache
def rendered_width(label: str, font_px: float = 10.0) -> float:
    """The renderer's own width of ``label``: the y-axis title of a probe chart sits left of the
    widest label, so doubling the label moves it by exactly one label width."""
    return _title_x(label, font_px) - _title_x(label + label, font_px)


def text_boxes(root: ET.Element, labels: set[str]) -> dict[str, tuple[float, float, float, float]]:
    """(x0, x1, y0, y1) of the drawn texts among ``labels``: width from the renderer, widened by
    12 % (a viewer's sans-serif such as DejaVu Sans is up to ~10 % wider than the renderer's),
    height from the font size (ascent 0.8 em above the baseline, descent 0.25 em below)."""
    out = {}
    for t in marks(root, "text mark"):
        text = "".join(t.itertext())
        if text not in labels:
            continue
        assert text not in out, f"{text!r} drawn twice"
        x, y = translate(t)
        fs = float(t.get("font-size", "10px").removesuffix("px"))
        w = rendered_width(text, fs) * 1.12
        x0 = {"start": x, "end": x - w, "middle": x - w / 2}[t.get("text-anchor", "start")]
        out[text] = (x0, x0 + w, y - 0.8 * fs, y + 0.25 * fs)
    return out


def overlapping(boxes: dict[str, tuple[float, float, float, float]]) -> list[tuple[str, str]]:
    names = sorted(boxes)
    bad = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ax0, ax1, ay0, ay1 = boxes[a]
            bx0, bx1, by0, by1 = boxes[b]
            if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                bad.append((a, b))
    return bad


def line_span(el: ET.Element) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a rule, which Vega writes as a translated ``<line>``."""
    x, y = translate(el)
    return x, y, x + float(el.get("x2", "0")), y + float(el.get("y2", "0"))


def rule_x(root: ET.Element) -> dict[str, float]:
    """Pixel x of each labelled vertical rule (its aria-label carries the label)."""
    out = {}
    for r in marks(root, "rule mark"):
        m = re.search(r"label: (.*)$", r.get("aria-label", ""))
        if m:
            x0, _, x1, _ = line_span(r)
            assert x0 == x1  # vertical
            out[m.group(1)] = x0
    return out


# --- 1. time axes follow the span


def _frames(start: dt.datetime, step: dt.timedelta, n: int) -> dict[str, pl.DataFrame]:
    ts = [start + step * i for i in range(n)]
    val = [0.001 * (1 + i % 7) for i in range(n)]
    base = pl.DataFrame({"ts": ts, "value": val}).with_columns(
        pl.col("ts").cast(pl.Datetime("us", "UTC"))
    )
    return {
        "quantiles": base.with_columns(instance=pl.lit("node1"), quantile=pl.lit(0.99)),
        "rates": base.with_columns(rcode=pl.lit("NOERROR")),
        "counts": base.with_columns(count=pl.lit(3)),
        "slow": base.with_columns(
            capture=pl.lit("node1"), slow=pl.lit(2, pl.UInt32), unanswered=pl.lit(1, pl.UInt32)
        ),
        "syn": base.with_columns(
            capture=pl.lit("node1"),
            dst_ip=pl.lit("169.254.169.253"),
            syns=pl.lit(4, pl.UInt32),
            retransmitted_syns=pl.lit(1, pl.UInt32),
        ),
        "pps": base.select(
            pl.col("ts").alias("bin"),
            capture=pl.lit("node1"),
            dst_ip=pl.lit("169.254.169.253"),
            pps=pl.lit(50.0),
        ),
    }


def every_time_chart(start: dt.datetime, step: dt.timedelta, n: int) -> dict[str, Any]:
    f = _frames(start, step, n)
    change = start + step * (n // 3)
    fix = start + step * (2 * n // 3)
    q = charts.latency_quantiles_chart(f["quantiles"])
    return {
        "latency_quantiles_chart": q,
        "with_change_marker": charts.with_change_marker(q, change, fix),
        "rate_chart": charts.rate_chart(f["rates"]),
        "before_after_chart": charts.before_after_chart(f["rates"], change, fix_time=fix),
        "slow_answers_chart": charts.slow_answers_chart(f["slow"], change_time=change),
        "syn_retransmissions_chart": charts.syn_retransmissions_chart(f["syn"], fix_time=fix),
        "io_graph_chart": charts.io_graph_chart(f["pps"], change_time=change, fix_time=fix),
        "count_chart": charts.count_chart(f["counts"], change_time=change),
    }


def check_ticks(
    labels: list[tuple[str, float]], parse: str, at_least: int = 4
) -> list[dt.datetime]:
    """Distinct labels, at least ``at_least``, placed in time order at a constant pixel-per-second ratio
    (so each label is where its time is), returned as datetimes."""
    texts = [t for t, _ in labels]
    assert len(texts) >= at_least, texts
    assert len(set(texts)) == len(texts), texts
    times = [dt.datetime.strptime(t, parse) for t in texts]
    xs = [x for _, x in labels]
    ratios = [(xs[i] - xs[0]) / (times[i] - times[0]).total_seconds() for i in range(1, len(times))]
    assert all(r > 0 for r in ratios), (texts, xs)
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-6)
    return times


def test_short_span_labels_carry_seconds_and_are_distinct() -> None:
    # the sample's shape: 100 s of 1 s points, change and fix inside
    for name, chart in every_time_chart(T0, dt.timedelta(seconds=1), 101).items():
        labels = axis_labels(render(chart), "X")
        texts = [t for t, _ in labels]
        assert all(CLOCK_S.match(t) for t in texts), (name, texts)
        times = check_ticks(labels, "%H:%M:%S")
        # whole multiples of one step, all inside the data's 100 s
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert len(steps) == 1 and steps.pop() in {5, 10, 15, 20, 30}, (name, texts)
        assert texts[0] >= "06:08:45" and texts[-1] <= "06:10:26", (name, texts)


def test_hours_show_minutes_without_seconds() -> None:
    start = dt.datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    for name, chart in every_time_chart(start, dt.timedelta(minutes=1), 6 * 60).items():
        labels = axis_labels(render(chart), "X")
        texts = [t for t, _ in labels]
        assert all(CLOCK_M.match(t) for t in texts), (name, texts)
        times = check_ticks(labels, "%H:%M")
        assert all(t.minute % 30 == 0 for t in times), (name, texts)  # steps of whole half hours


def test_days_show_dates() -> None:
    start = dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    for name, chart in every_time_chart(start, dt.timedelta(minutes=30), 3 * 48 + 1).items():
        labels = axis_labels(render(chart), "X")
        texts = [t for t, _ in labels]
        # three days: dates, with the clock when the step is under a day, never seconds
        assert all(re.match(r"^Nov \d\d( \d\d:\d\d)?$", t) for t in texts), (name, texts)
        parse = "%b %d %H:%M" if " " in texts[0][4:] else "%b %d"
        check_ticks(labels, parse)
        assert {t[:6] for t in texts} >= {"Nov 24", "Nov 25", "Nov 26"}, (name, texts)


def test_short_span_across_midnight_says_the_date() -> None:
    start = dt.datetime(2026, 11, 25, 23, 58, tzinfo=UTC)
    chart = charts.rate_chart(_frames(start, dt.timedelta(seconds=2), 121)["rates"])
    texts = [t for t, _ in axis_labels(render(chart), "X")]
    assert all(re.match(r"^Nov 2[56] \d\d:\d\d(:\d\d)?$", t) for t in texts), texts
    assert any(t.startswith("Nov 25 23:") for t in texts)
    assert any(t.startswith("Nov 26 00:") for t in texts)
    assert len(set(texts)) == len(texts)


def test_time_labels_are_utc_whatever_the_local_time_zone() -> None:
    chart = charts.rate_chart(_frames(T0, dt.timedelta(seconds=1), 101)["rates"])
    here = [t for t, _ in axis_labels(render(chart), "X")]
    code = "import sys, vl_convert as v; sys.stdout.write(v.vegalite_to_svg(sys.stdin.read()))"
    env = {**os.environ, "TZ": "America/New_York"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=chart.to_json(),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    there = [t for t, _ in axis_labels(ET.fromstring(out.stdout), "X")]
    assert here == there and here[0].startswith("06:0")  # 06:0x UTC, not 01:0x New York


def test_marker_outside_the_data_widens_the_ticks() -> None:
    # data for 100 s, the fix 20 minutes later: ticks cover both, with minutes, not 1 s steps
    f = _frames(T0, dt.timedelta(seconds=1), 101)
    chart = charts.with_change_marker(
        charts.rate_chart(f["rates"]), T0, T0 + dt.timedelta(minutes=20)
    )
    labels = axis_labels(render(chart), "X")
    times = check_ticks(labels, "%H:%M")
    assert times[0].strftime("%H:%M") == "06:10" and times[-1].strftime("%H:%M") >= "06:25"


# --- 2. histograms: an empty bin reads as zero


def gap_hist() -> pl.DataFrame:
    # 10 bins per decade: 1.1 s (x3) in [1, 1.2589), 2.2 s (x2) in [1.9953, 2.5119); the bins
    # [1.2589, 1.5849) and [1.5849, 1.9953) are empty
    lat = pl.DataFrame({"capture": ["node1"] * 5, "latency_s": [1.1, 1.1, 1.1, 2.2, 2.2]})
    return up.log_histogram(lat, by=["capture"], bins_per_decade=10)


def test_histogram_outline_drops_to_zero_across_a_gap() -> None:
    chart = charts.latency_histogram_chart(gap_hist(), by=["capture"])
    spec = chart.to_dict()
    outline = spec["datasets"][spec["layer"][0]["data"]["name"]]
    got = [(r["edge_s"], r["count"]) for r in sorted(outline, key=lambda r: r["order"])]
    want = [(1.0, 0), (1.0, 3), (10**0.1, 0), (10**0.3, 0), (10**0.3, 2), (10**0.4, 0)]
    assert [c for _, c in got] == [c for _, c in want]
    assert [e for e, _ in got] == pytest.approx([e for e, _ in want], rel=1e-9)


def test_histogram_svg_has_no_segment_across_the_gap() -> None:
    chart = charts.latency_histogram_chart(gap_hist(), by=["capture"])
    root = render(chart)
    (line,) = marks(root, "line mark")
    pts = path_points(line.get("d", ""))
    # the x domain is [1, 10] s (whole decades), 640 px wide: px(v) = 640 * log10(v)
    assert {t for t, _ in axis_labels(root, "X")} >= {"1", "10"}
    gap_lo, gap_hi = 640 * 0.1, 640 * 0.3
    lowest, lowest_y = max(axis_labels(root, "Y"), key=lambda ty: ty[1])
    assert float(lowest) == 0 and abs(lowest_y - charts.HEIGHT) < 4  # label at the zero line
    zero_y = charts.HEIGHT
    assert max(y for _, y in pts) == pytest.approx(zero_y, abs=0.6)
    crossing = [
        (a, b)
        for a, b in itertools.pairwise(pts)
        if min(a[0], b[0]) < gap_hi - 1 and max(a[0], b[0]) > gap_lo + 1
    ]
    # count ticks: 0 and 1, 2 (counts up to 3: Vega's own symlog ticks would be 0.0, 0.5, ...)
    assert [t for t, _ in axis_labels(root, "Y")] == ["0", "1", "2"]
    assert crossing  # the outline does run through the gap...
    for a, b in crossing:  # ...but only flat on the zero line
        assert a[1] == pytest.approx(zero_y, abs=0.6) and b[1] == pytest.approx(zero_y, abs=0.6)


def test_histogram_with_phases_and_a_zero_count_row() -> None:
    lat = pl.DataFrame(
        {
            "capture": ["node1"] * 4,
            "phase": ["incident", "incident", "fix", "fix"],
            "latency_s": [0.001, 1.1, 0.001, 0.0012],
        }
    )
    hist = up.log_histogram(lat, by=["capture", "phase"])
    # a listed bin with count 0 (another producer might list empty bins) is not a spike
    empty = hist.filter(pl.col("phase") == "fix").with_columns(
        pl.col("lower_s") * 1000,
        pl.col("upper_s") * 1000,
        pl.lit(0).cast(hist["count"].dtype).alias("count"),
    )
    hist = pl.concat([hist, empty])
    chart = charts.latency_histogram_chart(hist, by=["capture"], dash="phase")
    spec = chart.to_dict()
    outline = spec["datasets"][spec["layer"][0]["data"]["name"]]
    by_phase: dict[str, list[tuple[float, int]]] = {}
    for r in sorted(outline, key=lambda r: (r["dash"], r["order"])):
        by_phase.setdefault(r["dash"], []).append((r["edge_s"], r["count"]))
    # incident: 0.001 s and 1.1 s, 30 bins apart: two runs, each rising from and falling to 0
    assert [c for _, c in by_phase["incident"]] == [0, 1, 0, 0, 1, 0]
    # fix: 0.001 and 0.0012 s share the bin [0.001, 0.00126) (log10(0.0012) * 10 = -29.2 ->
    # bin -30): one bin of 2; the listed empty bin at 1 s adds nothing
    assert [c for _, c in by_phase["fix"]] == [0, 2, 0]
    dots = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert sorted(r["count"] for r in dots) == [1, 1, 2]


# --- 3. rule labels never overlap


def test_duration_histogram_close_rules_get_separate_label_boxes() -> None:
    durations = [0.0002] * 50 + [1.02] * 20 + [3.03] * 10 + [7.17] * 5 + [10.0] * 5
    modes = pl.DataFrame({"mode_s": [1.02, 3.03, 7.17, 10.0, 0.0002]})
    chart = charts.duration_histogram_chart(
        logs.duration_histogram(pl.DataFrame({"duration_s": durations})),
        modes=modes,
        threshold_s=1.0,
    )
    root = render(chart)
    labels = {"slow ≥ 1 s", "mode 1.02 s", "mode 3.03 s", "mode 7.17 s", "mode 10 s", "mode 0.2 ms"}
    boxes = text_boxes(root, labels)
    assert set(boxes) == labels  # every rule keeps its own label, drawn once
    assert overlapping(boxes) == []
    rules = rule_x(root)
    for label, (x0, x1, _, _) in boxes.items():
        # each label starts (or ends) right next to its own rule
        assert min(abs(x0 - rules[label]), abs(x1 - rules[label])) <= 4, label
    # the labels sit above the tallest bar (the y scale leaves room for their rows)
    bar_tops = [
        float(re.match(r"M[-\d.e]+,([-\d.e]+)", r.get("d", "")).group(1))  # type: ignore[union-attr]
        for r in marks(root, "rect mark")
        if r.get("fill") != "white"  # not the boxes under the labels
    ]
    label_rows_bottom = max(b[3] for b in boxes.values())
    assert bar_tops and min(bar_tops) > label_rows_bottom
    # the far-away mode (0.2 ms) stays in the top row; 1 s and 1.02 s are 3.5 px apart and do not
    top = min(b[2] for b in boxes.values())
    assert boxes["mode 0.2 ms"][2] == top
    assert boxes["slow ≥ 1 s"][2] != boxes["mode 1.02 s"][2]


def test_ladder_labels_do_not_overlap_on_a_wide_axis() -> None:
    # the sample's handshake chart: 10 us .. 30 s, so 1/3/7/15 s are 30-45 px apart
    lat = pl.DataFrame({"capture": ["node1"] * 4, "latency_s": [0.00001, 0.0003, 1.1, 25.0]})
    hist = up.log_histogram(lat, by=["capture"])
    ladder = up.syn_ladder()
    chart = charts.latency_histogram_chart(hist, ladder=ladder)
    root = render(chart)
    labels = set(ladder["label"].to_list())
    boxes = text_boxes(root, labels)
    assert set(boxes) == labels and overlapping(boxes) == []
    rules = rule_x(root)
    for label, (x0, x1, _, _) in boxes.items():
        assert min(abs(x0 - rules[label]), abs(x1 - rules[label])) <= 4, label
    # ...and above the outline's highest point
    (line,) = marks(root, "line mark")
    assert min(y for _, y in path_points(line.get("d", ""))) > max(b[3] for b in boxes.values())
    # the same ladder on a narrow axis (1..100 s, the ladder chart) fits in one row
    tail = charts.ladder_chart(hist, ladder, by=["capture"], min_s=0.2)
    boxes = text_boxes(render(tail), labels)
    assert overlapping(boxes) == [] and len({b[2] for b in boxes.values()}) == 1


def test_label_layout_rows_by_hand() -> None:
    # domain 1e-4 .. 100 s over 640 px: 106.7 px per decade. 1 s and 1.02 s are 0.9 px apart:
    # second row; 0.001 s is 320 px left of them: first row; 100 s sits at the right edge: its
    # label goes left of its rule
    layout = _histogram._rule_label_layout(
        [(1.0, "a 1"), (1.02, "b 1.02"), (0.001, "c"), (100.0, "d 100")], (1e-4, 100.0)
    )
    rows = {r["label"]: (r["row"], r["side"]) for r in layout.iter_rows(named=True)}
    assert rows == {
        "c": (0, "right"),
        "a 1": (0, "right"),
        "b 1.02": (1, "right"),
        "d 100": (0, "left"),
    }
    px = {r["label"]: r["px"] for r in layout.iter_rows(named=True)}
    assert px["a 1"] == pytest.approx(640 * 4 / 6) and px["d 100"] == pytest.approx(640.0)


# --- 4. before/after: one segment per period, readable at ms and tens of seconds


def incident_frame() -> tuple[pl.DataFrame, dt.datetime, dt.datetime]:
    change = T0 + dt.timedelta(seconds=20)
    fix = T0 + dt.timedelta(seconds=80)
    rows = []
    for i in range(101):
        t = T0 + dt.timedelta(seconds=i)
        rows.append((t, "node2", 0.002 + 0.001 * (i % 3)))  # UDP control: milliseconds
        slow = change <= t < fix
        rows.append((t, "node1", 20.0 + i % 5 if slow else 0.003))
    df = pl.DataFrame(rows, schema=["ts", "node", "value"], orient="row")
    return df.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))), change, fix


def test_before_after_segments_span_only_their_period() -> None:
    df, change, fix = incident_frame()
    chart = charts.before_after_chart(df, change, by=["node"], fix_time=fix, y_title="p99 (s)")
    spec = chart.to_dict()
    seg = spec["datasets"][spec["layer"][1]["data"]["name"]]
    assert {(r["series"], r["period"]) for r in seg} == {
        (n, p) for n in ("node1", "node2") for p in ("before", "after", "after fix")
    }
    bounds = {"before": (None, change), "after": (change, fix), "after fix": (fix, None)}
    for r in seg:
        start = dt.datetime.fromisoformat(r["start"])
        end = dt.datetime.fromisoformat(r["end"])
        lo, hi = bounds[r["period"]]
        assert (lo is None or start >= lo) and (hi is None or end < hi), r
        # independent: the mean of the same rows, filtered by hand
        rows = df.filter(pl.col("node") == r["series"])
        if lo is not None:
            rows = rows.filter(pl.col("ts") >= lo)
        if hi is not None:
            rows = rows.filter(pl.col("ts") < hi)
        assert r["points"] == rows.height and r["mean"] == pytest.approx(rows["value"].mean())
    # node1 during the incident: 20 + (i % 5) for i = 20..79 -> mean 22 (each residue 12 times)
    n1 = next(r for r in seg if r["series"] == "node1" and r["period"] == "after")
    assert n1["mean"] == pytest.approx(22.0) and n1["points"] == 60
    # in the SVG: the incident segment of node1 lies between the change and the fix rules
    root = render(chart)
    # the time rules' aria-labels are "at: hh:mm:ss": the change, then the fix
    times = sorted(
        line_span(r)[0]
        for r in marks(root, "rule mark")
        if r.get("aria-label", "").startswith("at: ")
    )
    assert len(times) == 2
    at = {"change": times[0], "fix": times[1]}
    seen = 0
    for r in marks(root, "rule mark"):
        label = r.get("aria-label", "")
        if "node: node1; period: after;" in label:
            x0, _, x1, _ = line_span(r)
            assert at["change"] <= x0 < x1 < at["fix"]
            seen += 1
    assert seen == 1
    sub = spec["title"]["subtitle"]
    assert "thick segments: mean per period (before, after, after fix)" in sub[0]


def test_before_after_ms_next_to_tens_of_seconds_uses_symlog() -> None:
    df, change, fix = incident_frame()
    chart = charts.before_after_chart(df, change, by=["node"], fix_time=fix)
    y = chart.to_dict()["layer"][0]["encoding"]["y"]
    # positives from 0.002 to 24: constant at the decade under 0.002, ticks 0 and 0.01 .. 100
    assert y["scale"] == {"type": "symlog", "constant": 0.001, "domain": [0, 100.0]}
    assert y["axis"]["values"] == [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]
    root = render(chart)
    texts = [t for t, _ in axis_labels(root, "Y")]
    assert texts == ["0", "0.01", "0.1", "1", "10", "100"]
    ys = dict(axis_labels(root, "Y"))
    # the ms node is readable: its 2-4 ms sit well above the zero line (log-like spacing)
    assert ys["0"] - ys["0.01"] > 40
    assert "symmetric log scale" in chart.to_dict()["title"]["subtitle"][0]


def test_before_after_scale_choice_and_order_check() -> None:
    df, change, fix = incident_frame()
    calm = df.filter(pl.col("node") == "node2")  # 2-4 ms: spread 2x, linear
    spec = charts.before_after_chart(calm, change, by=["node"]).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["scale"] == {"zero": True}
    assert "y: linear scale" in spec["title"]["subtitle"][0]
    forced = charts.before_after_chart(df, change, by=["node"], log_scale=False).to_dict()
    assert forced["layer"][0]["encoding"]["y"]["scale"] == {"zero": True}
    with pytest.raises(ValueError, match="fix_time 2026-11-26 06:09:05 is before change_time"):
        charts.before_after_chart(df, fix, fix_time=change)
    # zeros stay drawable on the symlog axis (no gaps): every row reaches the chart data
    zeros = df.with_columns(
        pl.when(pl.col("ts") == T0).then(0.0).otherwise(pl.col("value")).alias("value")
    )
    spec = charts.before_after_chart(zeros, change, by=["node"]).to_dict()
    lines = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert len(lines) == df.height and sum(r["value"] == 0.0 for r in lines) == 2
    assert spec["layer"][0]["encoding"]["y"]["scale"]["type"] == "symlog"
    assert math.isclose(spec["layer"][0]["encoding"]["y"]["scale"]["constant"], 0.001)


def test_time_tooltips_are_utc_too() -> None:
    # tooltips are only seen in a browser (notebooks), whose time zone may not be UTC: every
    # temporal tooltip must go through Vega's utcFormat, never the local timeFormat
    for name, chart in every_time_chart(T0, dt.timedelta(seconds=1), 101).items():
        vg = json.dumps(vlc.vegalite_to_vega(chart.to_json()))
        tips = re.findall(r'"tooltip": \{"signal": "((?:[^"\\]|\\.)*)"', vg)
        assert tips, name
        assert any("utcFormat(" in t for t in tips), name
        assert not any("timeFormat(" in t for t in tips), name


def test_marker_on_a_chart_with_unknown_data_keeps_its_axis() -> None:
    # data from a URL: its extent is unknown, so the chart's own ticks and format stay
    chart = (
        alt.Chart(alt.UrlData("rates.json"))
        .mark_line()
        .encode(x=alt.X("ts:T", axis=alt.Axis(format="%d %H")), y="value:Q")
    )
    marked = charts.with_change_marker(chart, T0).to_dict()
    x = marked["layer"][0]["encoding"]["x"]
    assert x["axis"] == {"format": "%d %H"} and x["scale"] == {"type": "utc"}


def test_io_graph_limit_label_clear_of_the_time_labels() -> None:
    # change 4 s into a 100 s capture: its label starts where the limit's label is
    f = _frames(T0, dt.timedelta(seconds=1), 101)
    chart = charts.io_graph_chart(
        f["pps"], change_time=T0 + dt.timedelta(seconds=4), fix_time=T0 + dt.timedelta(seconds=9)
    )
    root = render(chart)
    boxes = text_boxes(root, {"limit 1024 pps", "change", "fix"})
    assert set(boxes) == {"limit 1024 pps", "change", "fix"} and overlapping(boxes) == []
    (limit,) = [r for r in marks(root, "rule mark") if "limit" in r.get("aria-label", "")]
    _, y0, _, y1 = line_span(limit)
    assert y0 == y1 and y0 > max(boxes["change"][3], boxes["fix"][3])  # the rule passes under them


def test_narrow_time_chart_gets_fewer_ticks() -> None:
    f = _frames(T0, dt.timedelta(seconds=1), 101)
    wide = axis_labels(render(charts.rate_chart(f["rates"])), "X")
    narrow_chart = charts.rate_chart(f["rates"]).properties(width=260)
    narrow = axis_labels(render(charts.with_change_marker(narrow_chart, T0)), "X")
    assert len(narrow) < len(wide)
    check_ticks(narrow, "%H:%M:%S", at_least=3)
    # the labels fit side by side: rendered widths within the spacing of the ticks
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(narrow)]
    assert min(gaps) > max(rendered_width(t) for t, _ in narrow)


def test_latency_chart_ceiling_labels_clear_of_the_time_labels() -> None:
    # CoreDNS history where one instance's p99 sits at the 8.192 s ceiling from minute 40 on
    from prom_server import T0 as P0
    from prom_server import history, utc

    from kit.promql import quantile_series

    q = quantile_series(history()[1], by=("instance",), step="30s", compat="2")
    texts = {
        "change",
        "fix",
        "bucket ceiling 8.192 s: a quantile here means at least this slow",
        "p99 = 8.192 s (ceiling of the last finite bucket)",
    }
    for change_min, fix_min in ((40, 50), (1, 3)):  # the second: marks over the ceiling label
        chart = charts.with_change_marker(
            charts.latency_quantiles_chart(q), utc(P0 + change_min * 60), utc(P0 + fix_min * 60)
        )
        boxes = text_boxes(render(chart), texts)
        assert set(boxes) == texts and overlapping(boxes) == [], change_min
    # the y domain leaves 48 px over the ceiling on the log axis: by hand, bottom 0.001 (the
    # smallest positive quantile is 0.0017), a = 48/260, top = 10^((log10 8.192 - a * -3) / (1 - a))
    y = charts.latency_quantiles_chart(q).to_dict()["layer"][0]["encoding"]["y"]["scale"]
    a = 48 / 260
    want_top = 10 ** ((math.log10(8.192) + 3 * a) / (1 - a))
    assert y["type"] == "log" and y["domain"] == [pytest.approx(0.001), pytest.approx(want_top)]


def _legend_texts(root: ET.Element) -> list[str]:
    out = []
    for g in root.iter(f"{SVG}g"):
        if "role-legend-label" in (g.get("class") or ""):
            out += ["".join(t.itertext()) for t in g.iter(f"{SVG}text")]
    return out


def test_multi_column_series_names_are_not_cut_in_legends() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    long_up = "fd00:1234:5678:9abc:def0:1234:5678:9abc"
    rows = {
        "ts": [t0 + dt.timedelta(seconds=i) for i in range(4)] * 2,
        "upstream": [f"[{long_up}]:53"] * 4 + ["169.254.169.253:53"] * 4,
        "transport": ["tcp"] * 8,
        "value": [1.0, 2.0, 3.0, 4.0] * 2,
    }
    chart = charts.rate_chart(pl.DataFrame(rows), by=("upstream", "transport"), y_title="errors/s")
    labels = _legend_texts(render(chart))
    # "upstream=[fd00:...]:53, transport=tcp" is ~50 characters: past Vega-Lite's default 160 px
    want = {f"upstream=[{long_up}]:53, transport=tcp", "upstream=169.254.169.253:53, transport=tcp"}
    assert want <= set(labels), labels
    assert not any(lab.endswith("…") for lab in labels)
