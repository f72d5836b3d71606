"""kit.charts, captures section (notebooks 04-05): specs built from small hand-made frames, and real
SVG from vl-convert (labels from the data are drawn as text, never as markup)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

from kit import charts
from kit.analyses import upstream as up

SVG = "{http://www.w3.org/2000/svg}"
T0 = dt.datetime(2026, 11, 26, 6, 9, 0, tzinfo=dt.UTC)
CHANGE = T0 + dt.timedelta(seconds=4)
FIX = T0 + dt.timedelta(seconds=64)
HOSTILE = "<script>alert(\"x\")</script> & 'q'"


def svg_texts(chart: alt.TopLevelMixin) -> tuple[str, list[str]]:
    svg = vlc.vegalite_to_svg(chart.to_json())
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    return svg, ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def layers_with_data(chart: alt.TopLevelMixin) -> list[tuple[dict[str, Any], list[dict]]]:
    """Each layer's spec with the rows of its dataset."""
    spec = chart.to_dict()
    sets = spec.get("datasets", {})
    return [(layer, sets[layer["data"]["name"]]) for layer in spec["layer"]]


def subtitle(chart: alt.TopLevelMixin) -> list[str]:
    sub = chart.to_dict()["title"].get("subtitle", [])
    return [sub] if isinstance(sub, str) else list(sub)


def mark_of(layer: dict[str, Any]) -> str:
    mark = layer["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def hist_frame() -> pl.DataFrame:
    # node1: a fast hump and the 1/3/7 s piles; node2: fast only (what log_histogram gives)
    lat = pl.DataFrame(
        {
            "capture": ["node1"] * 8 + ["node2"] * 3,
            "latency_s": [0.0002, 0.0003, 0.002, 1.02, 1.03, 3.03, 7.2, 10.0, 0.0002, 0.0004, 0.03],
        }
    )
    return up.log_histogram(lat, by=["capture"], bins_per_decade=10)


def test_histogram_chart_log_axis_ladder_and_modes() -> None:
    hist = hist_frame()
    ladder = up.syn_ladder()
    modes = pl.DataFrame({"capture": ["node1"], "mode_s": [1.02], "count": [2]})
    chart = charts.latency_histogram_chart(hist, by=["capture"], ladder=ladder, modes=modes)
    layers = layers_with_data(chart)
    line = layers[0][0]
    assert mark_of(line) == "line" and line["mark"]["interpolate"] == "step-after"
    assert line["encoding"]["x"]["field"] == "edge_s"
    assert line["encoding"]["order"]["field"] == "order"
    assert line["encoding"]["x"]["scale"]["type"] == "log"
    assert "(s, log scale)" in line["encoding"]["x"]["title"]
    dots, dot_rows = layers[1]
    assert mark_of(dots) == "point" and dots["encoding"]["x"]["field"] == "mid_s"
    # one dot per non-empty bin: 11 values, bins by hand (10 per decade): node1 -37 (0.0002),
    # -36 (0.0003), -27 (0.002), 0 (1.02, 1.03), 4 (3.03), 8 (7.2), 10 (10.0); node2 -37, -34, -16
    assert len(dot_rows) == 10 and sum(r["count"] for r in dot_rows) == 11
    assert {r["count"] for r in dot_rows if r["lower_s"] == pytest.approx(1.0)} == {2}
    rules = [rows for layer, rows in layers if mark_of(layer) == "rule"]
    assert [r["x"] for r in rules[0]] == [1.0, 3.0, 7.0, 15.0]
    diamonds = [
        rows for layer, rows in layers if mark_of(layer) == "point" and layer["mark"].get("shape")
    ]
    assert diamonds == [[{"series": "node1", "mode_s": 1.02, "count": 2}]]
    # the log x domain is whole decades around bins and rules: 10^-4 (0.0002) to 10^2 (15 s timer
    # and the [10, 12.6) bin round up to 100)
    assert line["encoding"]["x"]["scale"]["domain"] == [pytest.approx(1e-4), pytest.approx(100.0)]
    _, texts = svg_texts(chart)
    assert "SYN retry 2: 3 s" in texts and "node2" in texts


def test_histogram_chart_dashes_by_phase_and_draws_hostile_labels_as_text() -> None:
    lat = pl.DataFrame(
        {
            "capture": [HOSTILE, HOSTILE, "node2"],
            "phase": ["healthy", "incident", None],
            "latency_s": [0.001, 3.0, 0.002],
        }
    )
    hist = up.log_histogram(lat, by=["capture", "phase"])
    chart = charts.latency_histogram_chart(hist, by=["capture"], dash="phase")
    line = chart.to_dict()["layer"][0]
    assert line["encoding"]["strokeDash"]["field"] == "dash"
    svg, texts = svg_texts(chart)
    assert "<script" not in svg
    assert HOSTILE in texts  # the label is drawn verbatim, as text
    assert "(none)" in texts  # a row outside every phase


def test_ladder_chart_keeps_only_the_slow_tail() -> None:
    hist = hist_frame()
    chart = charts.ladder_chart(hist, up.syn_ladder(), by=["capture"], min_s=0.2)
    rows = layers_with_data(chart)[1][1]
    # bins ending above 0.2 s: node1's 1.02/1.03, 3.03, 7.2 and 10.0 bins; node2 has none
    assert sorted(r["lower_s"] for r in rows) == pytest.approx(
        [1.0, 2.5119, 6.3096, 10.0], rel=1e-4
    )
    assert {r["series"] for r in rows} == {"node1"}


def rates_frame(pps: list[float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "bin": [T0 + dt.timedelta(seconds=i) for i in range(len(pps))],
            "capture": ["node1"] * len(pps),
            "dst_ip": ["169.254.169.253"] * len(pps),
            "pps": pps,
        }
    )


def test_io_graph_limit_rule_share_and_change_marks() -> None:
    rates = rates_frame([100.0, 2000.0, 500.0, 1500.0])
    chart = charts.io_graph_chart(rates, limit_pps=1024, change_time=CHANGE, fix_time=FIX)
    # 2000 and 1500 are above 1024: 2 of 4 bins
    assert subtitle(chart)[0] == "peak 2000 pps; 2 of 4 bins (50.0%) above 1024 pps"
    assert "change at 06:09:04 UTC (dashed)" in subtitle(chart)
    layers = layers_with_data(chart)
    line, rows = layers[0]
    assert line["encoding"]["y"]["title"] == "packets per second"
    # the peak 48 px under the top of the 260 px plot: 2000 * 260 / 212
    assert line["encoding"]["y"]["scale"]["domain"] == [0, pytest.approx(2000 * 260 / 212)]
    assert [r["value"] for r in rows] == [100.0, 2000.0, 500.0, 1500.0]
    rule_rows = [rows for layer, rows in layers if mark_of(layer) == "rule"]
    assert rule_rows[0] == [{"limit": 1024.0, "label": "limit 1024 pps"}]
    marks = rule_rows[1]
    assert [m["mark"] for m in marks] == ["change", "fix"]
    assert marks[0]["at"].startswith("2026-11-26T06:09:04")
    _, texts = svg_texts(chart)
    assert "limit 1024 pps" in texts and "change" in texts and "fix" in texts


def test_io_graph_axis_reaches_the_limit_when_traffic_is_low() -> None:
    chart = charts.io_graph_chart(rates_frame([10.0, 20.0]), limit_pps=1024)
    assert subtitle(chart) == ["peak 20 pps; 0 of 2 bins (0.0%) above 1024 pps"]
    y = chart.to_dict()["layer"][0]["encoding"]["y"]
    assert y["scale"]["domain"] == [0, pytest.approx(1024 * 260 / 212)]


def test_io_graph_long_series_keeps_the_peak() -> None:
    pps = [50.0] * 5000
    pps[4321] = 1500.0
    chart = charts.io_graph_chart(rates_frame(pps), max_points=3000)
    rows = layers_with_data(chart)[0][1]
    assert len(rows) <= 3000
    assert max(r["value"] for r in rows) == 1500.0  # maximum per wider bin: the spike survives
    assert "maximum per 2 s bin" in subtitle(chart)


def test_syn_chart_totals_and_bars() -> None:
    syn = pl.DataFrame(
        {
            "ts": [T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)],
            "capture": ["node1"] * 3,
            "dst_ip": ["169.254.169.253"] * 3,
            "syns": [4, 3, 3],
            "first_syns": [4, 2, 1],
            "retransmitted_syns": [0, 1, 2],
        }
    )
    chart = charts.syn_retransmissions_chart(syn, change_time=CHANGE)
    assert subtitle(chart)[0] == "3 of 10 SYNs were retransmissions"
    bars, rows = layers_with_data(chart)[0]
    assert mark_of(bars) == "bar"
    assert [r["value"] for r in rows] == [0.0, 1.0, 2.0]
    assert bars["encoding"]["y"]["title"] == "retransmitted SYNs per bin"
    svg_texts(chart)


def test_charts_render_with_no_rows() -> None:
    # a UDP-only node: no SYN at all, no packets to an upstream
    empty_syn = up.syn_retransmissions(
        pl.DataFrame(
            schema={
                "ts": pl.Datetime("us", "UTC"),
                "capture": pl.String,
                "dst_ip": pl.String,
                "transport": pl.String,
                "tcp_flags": pl.UInt16,
                "is_retransmission": pl.Boolean,
            }
        )
    )
    chart = charts.syn_retransmissions_chart(empty_syn, change_time=CHANGE)
    assert subtitle(chart)[0] == "0 of 0 SYNs were retransmissions"
    svg_texts(chart)
    io = charts.io_graph_chart(rates_frame([]).cast({"pps": pl.Float64}), change_time=CHANGE)
    assert subtitle(io)[0] == "peak 0 pps; 0 of 0 bins (0.0%) above 1024 pps"
    svg_texts(io)


def test_slow_answers_chart_counts_slow_plus_unanswered() -> None:
    slow = pl.DataFrame(
        {
            "ts": [T0, T0 + dt.timedelta(seconds=5)],
            "capture": ["node1", "node1"],
            "queries": [150, 150],
            "slow": [0, 12],
            "unanswered": [0, 3],
        }
    )
    chart = charts.slow_answers_chart(slow, change_time=CHANGE, fix_time=FIX)
    rows = layers_with_data(chart)[0][1]
    assert [r["value"] for r in rows] == [0.0, 15.0]
    assert subtitle(chart) == [
        "change at 06:09:04 UTC (dashed)",
        "fix at 06:10:04 UTC (dashed)",
    ]
    _, texts = svg_texts(chart)
    assert "slow or unanswered queries per bin" in texts


def test_missing_columns_are_named() -> None:
    with pytest.raises(KeyError, match="retransmitted_syns"):
        charts.syn_retransmissions_chart(pl.DataFrame({"ts": [T0], "syns": [1]}))
    with pytest.raises(KeyError, match="pps"):
        charts.io_graph_chart(pl.DataFrame({"bin": [T0]}))
