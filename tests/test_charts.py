"""kit.charts: chart specs (encodings, the ceiling rule, aggregation bounds) and real SVG from vl-convert."""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc
from prom_server import T0, history, utc

from kit import charts
from kit.promql import evaluate, quantile_series

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def metrics() -> pl.DataFrame:
    return history()[1]


@pytest.fixture(scope="module")
def quantiles(metrics: pl.DataFrame) -> pl.DataFrame:
    return quantile_series(metrics, by=("instance",), step="30s", compat="2")


def svg_texts(chart: alt.TopLevelMixin) -> tuple[str, list[str]]:
    svg = vlc.vegalite_to_svg(chart.to_json())
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    texts = ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]
    return svg, texts


def datasets(chart: alt.TopLevelMixin) -> list[list[dict]]:
    return list(chart.to_dict()["datasets"].values())


def layer_marks(chart: alt.LayerChart) -> list[str]:
    return [layer["mark"]["type"] for layer in chart.to_dict()["layer"]]


def test_latency_chart_encodings_and_ceiling(quantiles: pl.DataFrame) -> None:
    chart = charts.latency_quantiles_chart(quantiles)
    spec = chart.to_dict()
    line = spec["layer"][0]
    assert line["mark"]["type"] == "line"
    enc = line["encoding"]
    assert (enc["x"]["field"], enc["x"]["type"]) == ("ts", "temporal")
    assert (enc["y"]["field"], enc["y"]["type"], enc["y"]["title"]) == (
        "value",
        "quantitative",
        "latency (s)",
    )
    assert enc["color"]["field"] == "series" and enc["strokeDash"]["field"] == "quantile_label"
    # the ceiling rule: a rule layer whose data is CoreDNS's last finite bucket
    rules = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule"]
    assert len(rules) == 1
    rule_data = spec["datasets"][rules[0]["data"]["name"]]
    assert rule_data[0]["ceiling"] == 8.192
    # the history's incident instance is pinned at 8.192: marked and said in words, in the SVG
    _, texts = svg_texts(chart)
    assert "p99 = 8.192 s (ceiling of the last finite bucket)" in texts
    assert any(t.startswith("bucket ceiling 8.192 s") for t in texts)
    assert {"p50", "p90", "p99"} <= set(texts)  # legend
    assert "10.0.0.1:9153" in texts


def test_latency_chart_without_pinned_values_uses_the_given_ceiling(
    quantiles: pl.DataFrame,
) -> None:
    calm = quantiles.filter(pl.col("instance") == "10.0.0.2:9153")
    assert not calm["at_ceiling"].any()
    chart = charts.latency_quantiles_chart(calm, ceiling=4.096)
    assert layer_marks(chart) == ["line", "rule", "text"]  # no pinned points, no pinned note
    _, texts = svg_texts(chart)
    assert any(t.startswith("bucket ceiling 4.096 s") for t in texts)
    assert layer_marks(charts.latency_quantiles_chart(calm, ceiling=None)) == ["line"]


def test_latency_chart_aggregates_keeping_spikes() -> None:
    # 30 instances x 3 quantiles x 2880 steps (1 day at 30 s) = 259,200 rows, one 5 s spike
    n = 2880
    ts = pl.datetime_range(utc(T0), utc(T0 + 30 * (n - 1)), "30s", eager=True)
    parts = []
    for i in range(30):
        for q in (0.5, 0.9, 0.99):
            vals = [0.001 * (1 + i) * (1 + q)] * n
            if i == 7 and q == 0.99:
                vals[1234] = 5.0
            parts.append(
                pl.DataFrame({"ts": ts, "instance": f"node-{i}", "quantile": q, "value": vals})
            )
    big = pl.concat(parts)
    chart = charts.latency_quantiles_chart(big, max_series=10, max_points=2000)
    lines = chart.to_dict()["datasets"][chart.to_dict()["layer"][0]["data"]["name"]]
    assert len(lines) <= 2000
    assert len({r["series"] for r in lines}) == 10
    # the spiky instance has the highest peak, so it is kept, and the max per bin keeps the spike
    assert max(r["value"] for r in lines if r["series"] == "node-7") == 5.0
    subtitle = chart.to_dict()["title"]["subtitle"]
    assert "10 slowest of 30 instance shown" in subtitle
    assert any(s.startswith("maximum per ") and s.endswith(" s bin") for s in subtitle)
    # 2000 rows / 30 lines -> >= 1 day / 65 points per line -> bins of 1800 s (the next nice width)
    assert "maximum per 1800 s bin" in subtitle


def test_nan_quantiles_are_gaps_not_errors(metrics: pl.DataFrame) -> None:
    # the node-local "." zone is idle for minutes 10-20: its quantiles are NaN there (as in Prometheus)
    q = quantile_series(
        metrics, by=("instance", "zone"), matchers='job="node-local-dns"', step="30s", compat="2"
    )
    nan_rows = q.filter(pl.col("value").is_nan())
    assert nan_rows.height
    chart = charts.latency_quantiles_chart(q, by=("instance", "zone"))
    data = chart.to_dict()["datasets"][chart.to_dict()["layer"][0]["data"]["name"]]
    assert len(data) == q.height
    assert sum(r["value"] is None for r in data) == nan_rows.height
    assert {r["series"] for r in data} == {
        "instance=10.0.0.9:9253, zone=.",
        "instance=10.0.0.9:9253, zone=cluster.local.",
    }
    svg_texts(chart)  # renders


@pytest.fixture(scope="module")
def rcode_rates(metrics: pl.DataFrame) -> pl.DataFrame:
    return evaluate(
        metrics,
        "sum by (instance, rcode) (rate(coredns_dns_responses_total[5m]))",
        step="30s",
        compat="2",
    )


def test_rate_chart_sums_to_the_requested_labels(
    rcode_rates: pl.DataFrame, metrics: pl.DataFrame
) -> None:
    chart = charts.rate_chart(rcode_rates, by=("rcode",), y_title="responses/s")
    spec = chart.to_dict()
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["y"]["title"] == "responses/s"
    data = spec["datasets"][spec["data"]["name"]]
    assert {r["series"] for r in data} == {"NOERROR", "NXDOMAIN", "SERVFAIL"}
    # independent: PromQL's own sum by (rcode) gives the same numbers the chart summed per instance
    direct = evaluate(
        metrics, "sum by (rcode) (rate(coredns_dns_responses_total[5m]))", step="30s", compat="2"
    )
    want = {(r["ts"], r["rcode"]): r["value"] for r in direct.iter_rows(named=True)}
    for r in data:
        ts = (
            dt.datetime.fromisoformat(r["ts"]).astimezone(dt.UTC)
            if isinstance(r["ts"], str)
            else r["ts"]
        )
        assert r["value"] == pytest.approx(want[(ts, r["series"])], rel=1e-9)
    _, texts = svg_texts(chart)
    assert "SERVFAIL" in texts and "responses/s" in texts
    stacked = charts.rate_chart(rcode_rates, stacked=True).to_dict()
    assert stacked["mark"]["type"] == "area" and stacked["encoding"]["y"]["stack"] == "zero"


def test_rate_chart_several_labels_and_bounds(rcode_rates: pl.DataFrame) -> None:
    chart = charts.rate_chart(rcode_rates, by=("instance", "rcode"), max_series=5, max_points=100)
    spec = chart.to_dict()
    data = spec["datasets"][spec["data"]["name"]]
    assert len(data) <= 100
    names = {r["series"] for r in data}
    assert len(names) == 5
    assert all(n.startswith("instance=") and ", rcode=" in n for n in names)
    assert "5 busiest of 12 series shown" in spec["title"]["subtitle"]


def test_before_after_chart(quantiles: pl.DataFrame) -> None:
    change = utc(T0 + 40 * 60)
    p99 = quantiles.filter((pl.col("quantile") == 0.99) & (pl.col("instance") == "10.0.0.1:9153"))
    chart = charts.before_after_chart(
        p99, change, by=("instance",), y_title="p99 (s)", change_label="force_tcp on"
    )
    spec = chart.to_dict()
    assert layer_marks(chart) == ["line", "rule", "rule", "text"]
    marker = spec["datasets"][spec["layer"][2]["data"]["name"]][0]
    assert dt.datetime.fromisoformat(marker["at"].replace("Z", "+00:00")) == change
    assert marker["mark"] == "force_tcp on"
    # the mean segments: independent polars means of the same rows on either side of the change
    means = {r["period"]: r for r in spec["datasets"][spec["layer"][1]["data"]["name"]]}
    finite = p99.filter(pl.col("value").is_finite())
    before = finite.filter(pl.col("ts") < change)["value"]
    after = finite.filter(pl.col("ts") >= change)["value"]
    assert means["before"]["mean"] == pytest.approx(before.mean(), rel=1e-12)
    assert means["after"]["mean"] == pytest.approx(after.mean(), rel=1e-12)
    assert means["before"]["points"] == before.len() and means["after"]["points"] == after.len()
    _, texts = svg_texts(chart)
    assert "force_tcp on" in texts and "p99 (s)" in texts


HOSTILE = "<script>alert(\"x\")</script>'q'"


def test_labels_from_data_render_as_text() -> None:
    ts = pl.datetime_range(utc(T0), utc(T0 + 600), "60s", eager=True)
    df = pl.DataFrame({"ts": ts, "instance": HOSTILE, "quantile": 0.99, "value": 0.01})
    df = df.vstack(df.with_columns(pl.lit("{{datum.x}} ${x} &amp;").alias("instance")))
    for chart in (
        charts.latency_quantiles_chart(df, title='<b>p99</b> & "co"'),
        charts.rate_chart(df, by=("instance",)),
        charts.before_after_chart(df, utc(T0 + 300), by=("instance",), change_label=HOSTILE),
    ):
        svg, texts = svg_texts(chart)
        assert "<script" not in svg and "<b>" not in svg
        assert HOSTILE in texts  # drawn verbatim, as text
        assert "{{datum.x}} ${x} &amp;" in texts  # not evaluated, not unescaped
    _, texts = svg_texts(charts.latency_quantiles_chart(df, title='<b>p99</b> & "co"'))
    assert '<b>p99</b> & "co"' in texts


@pytest.fixture
def restore_renderer() -> Iterator[None]:
    before, theme = alt.renderers.active, alt.theme.active
    yield
    alt.renderers.enable(before)
    alt.theme.enable(theme)


def test_use_report_renderer_gives_static_svg(
    restore_renderer: None, quantiles: pl.DataFrame
) -> None:
    assert "padding" not in charts.latency_quantiles_chart(quantiles).to_dict()
    charts.use_report_renderer()
    assert alt.renderers.active == "svg"
    # room on the right for text the viewer's font draws wider than vl-convert measured it
    spec = charts.latency_quantiles_chart(quantiles).to_dict()
    assert spec["padding"]["right"] == charts.REPORT_RIGHT_PADDING
    assert spec["config"]["view"] == {"continuousWidth": 300, "continuousHeight": 300}
    bundle = charts.latency_quantiles_chart(quantiles)._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "image/svg+xml" in data and "text/html" not in data
    ET.fromstring(data["image/svg+xml"])


def test_missing_columns_are_named() -> None:
    with pytest.raises(
        KeyError, match=r"latency_quantiles_chart: frame lacks column\(s\) \['quantile'\]"
    ):
        charts.latency_quantiles_chart(
            pl.DataFrame({"ts": [utc(T0)], "value": [1.0], "instance": ["a"]})
        )
    assert math.isclose(charts.COREDNS_CEILING_S, 0.00025 * 2**15)


def test_chart_functions_leave_global_altair_state_alone(
    quantiles: pl.DataFrame, rcode_rates: pl.DataFrame
) -> None:
    renderer, transformer = alt.renderers.active, alt.data_transformers.active
    charts.latency_quantiles_chart(quantiles).to_dict()
    charts.rate_chart(rcode_rates).to_dict()
    naive = dt.datetime(2024, 3, 1, 0, 40)  # naive = UTC
    p99 = quantiles.filter(pl.col("quantile") == 0.99)
    spec = charts.before_after_chart(p99, naive, by=("instance",)).to_dict()
    marker = spec["datasets"][spec["layer"][2]["data"]["name"]][0]
    assert dt.datetime.fromisoformat(marker["at"].replace("Z", "+00:00")) == utc(T0 + 40 * 60)
    assert (alt.renderers.active, alt.data_transformers.active) == (renderer, transformer)
