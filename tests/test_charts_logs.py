"""kit.charts, the section for notebooks 01-03: specs (fields, data, rules) and real SVG from
vl-convert, with hostile labels travelling as data."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from kit import charts
from kit.analyses import resolver_logs as logs

SVG = "{http://www.w3.org/2000/svg}"
UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> \"q\""


def svg_texts(chart: alt.TopLevelMixin) -> tuple[str, list[str]]:
    svg = vlc.vegalite_to_svg(chart.to_json())
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return svg, ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def datasets(chart: alt.TopLevelMixin) -> list[list[dict]]:
    return list(chart.to_dict()["datasets"].values())


def _counts() -> pl.DataFrame:
    ts = [T0 + dt.timedelta(minutes=m) for m in range(4)]
    return pl.DataFrame(
        {
            "ts": ts * 2,
            "upstream": ["10.0.0.2:53"] * 4 + [HOSTILE] * 4,
            "transport": ["tcp"] * 8,
            "count": [0, 120, 300, 280, 1, 0, 0, 2],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))


def test_with_change_marker_adds_rules_and_keeps_title() -> None:
    base = charts.rate_chart(
        pl.DataFrame(
            {
                "ts": [T0, T0 + dt.timedelta(minutes=1)],
                "value": [1.0, 2.0],
                "rcode": ["NOERROR"] * 2,
            }
        ),
        title="Responses per second",
    )
    fix = T0 + dt.timedelta(minutes=5)
    chart = charts.with_change_marker(base, T0.replace(tzinfo=None), fix)  # naive = UTC
    spec = chart.to_dict()
    assert spec["width"] == charts.WIDTH and spec["title"]["text"] == "Responses per second"
    # the chart, the rules, one label row per time (change on top, fix under it: never overlapping)
    assert len(spec["layer"]) == 4 and "title" not in spec["layer"][0]
    assert [la["mark"]["dy"] for la in spec["layer"][2:]] == [4, 18]
    marker = next(d for d in datasets(chart) if len(d) == 2 and "at" in d[0])
    assert [r["mark"] for r in marker] == ["change", "fix"]
    assert [r["at"][:19] for r in marker] == ["2024-05-01T12:00:00", "2024-05-01T12:05:00"]
    _, texts = svg_texts(chart)
    assert "change" in texts and "fix" in texts
    assert charts.with_change_marker(base, None) is base


def test_count_chart_stacks_bins_and_escapes_labels() -> None:
    chart = charts.count_chart(
        _counts(),
        by=["upstream", "transport"],
        change_time=T0 + dt.timedelta(minutes=1),
        title="Upstream errors per minute",
        y_title="errors per minute",
    )
    spec = chart.to_dict()
    bars = spec["layer"][0]
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["y"]["stack"] == "zero"
    assert bars["encoding"]["x2"]["field"] == "ts_end"
    data = next(d for d in datasets(chart) if d and "series" in d[0])
    # one row per (bin, series), each bar spanning its 1-minute bin, values unchanged
    assert len(data) == 8
    assert sum(r["value"] for r in data) == 703
    first = sorted(data, key=lambda r: (r["series"], r["ts"]))[0]
    assert dt.datetime.fromisoformat(first["ts_end"]) - dt.datetime.fromisoformat(
        first["ts"]
    ) == dt.timedelta(minutes=1)
    labels = {r["series"] for r in data}
    assert labels == {f"upstream={HOSTILE}, transport=tcp", "upstream=10.0.0.2:53, transport=tcp"}
    svg, texts = svg_texts(chart)
    assert "<script>" not in svg  # the label is drawn as escaped text
    assert any("<script>" in t for t in texts)
    assert "Upstream errors per minute" in texts and "errors per minute" in texts


def test_count_chart_keeps_the_largest_series() -> None:
    df = _counts()
    chart = charts.count_chart(df, by=["upstream"], max_series=1)
    data = next(d for d in datasets(chart) if d and "series" in d[0])
    assert {r["series"] for r in data} == {"10.0.0.2:53"}  # 700 errors beat 3
    assert chart.to_dict()["title"]["subtitle"] == ["1 largest of 2 series shown"]


def test_slow_by_chart_from_slow_by() -> None:
    q = pl.DataFrame(
        {
            "qname": [HOSTILE] * 3 + ["ok.example"] * 7,
            "duration_s": [2.0, 3.0, 0.1] + [0.01] * 6 + [1.5],
        }
    )
    br = logs.slow_by(q, "qname", threshold_s=1.0)
    chart = charts.slow_by_chart(br, "qname")
    spec = chart.to_dict()
    assert [la["mark"]["type"] for la in spec["layer"]] == ["bar", "tick"]
    assert spec["layer"][0]["encoding"]["y"]["sort"] == [HOSTILE, "ok.example"]
    data = datasets(chart)[0]
    # hostile name: 3 queries of 10 (30 %), 2 slow of 3 (66.7 %)
    row = next(r for r in data if r["group"] == HOSTILE)
    assert row["share_of_all"] == pytest.approx(30.0) and row["share_of_slow"] == pytest.approx(
        200 / 3
    )
    svg, texts = svg_texts(chart)
    assert "<script>" not in svg and HOSTILE in texts


def test_duration_histogram_chart_marks_modes_and_threshold() -> None:
    durations = [0.0002] * 50 + [1.02] * 20 + [3.03] * 10 + [7.1] * 5
    q = pl.DataFrame({"duration_s": durations})
    modes = pl.DataFrame({"mode_s": [1.02, 3.03, 7.1]})
    chart = charts.duration_histogram_chart(
        logs.duration_histogram(q), modes=modes, threshold_s=1.0
    )
    spec = chart.to_dict()
    marks = [la["mark"]["type"] for la in spec["layer"]]
    assert marks[:2] == ["rect", "rule"]
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    rules = next(d for d in datasets(chart) if d and set(d[0]) == {"x", "label"})
    # sorted by position: the threshold at 1 s, then the modes
    assert [(r["x"], r["label"]) for r in rules] == [
        (1.0, "slow ≥ 1 s"),
        (1.02, "mode 1.02 s"),
        (3.03, "mode 3.03 s"),
        (7.1, "mode 7.1 s"),
    ]
    bars = next(d for d in datasets(chart) if d and "lower_s" in d[0])
    assert sum(r["count"] for r in bars) == len(durations)
    # 0.2 ms durations are in their own log bin [10^-3.7, 10^-3.6) (one histogram semantics)
    assert min(r["lower_s"] for r in bars) == pytest.approx(10**-3.7)
    _, texts = svg_texts(chart)
    assert "mode 1.02 s" in texts and "mode 7.1 s" in texts and "slow ≥ 1 s" in texts
