"""Where the time went, per hop (issue 18): the ledger's charts (kit.charts.ledger) on real ledgers
of the lab's scenarios, their text, hostile names, and notebook 05's section in the report.

The chart data is asserted from the Vega-Lite spec's datasets, never from pixels; the expected
values come from the ledger itself (``kit.ledger`` on the scenario's captures) and from the
capture's own TCP connections, not from the chart code."""

from __future__ import annotations

import itertools
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import pytest
import vl_convert as vlc

import kit
import kit.report as report
from kit.charts import ledger as lv
from kit.report.html import narrative_html, summary_line_html

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "data" / "scenarios"
NB05 = REPO / "notebooks" / "05-upstream-tcp.py"
SVG = "{http://www.w3.org/2000/svg}"


def scenario(name: str) -> Path:
    path = SCENARIOS / name
    if not (path / "run.json").is_file():
        pytest.fail(f"{path} missing: regenerate it with `make scenarios`")
    return path


@pytest.fixture(scope="module")
def syn_drops() -> Any:
    cap = kit.read_capture(sorted((scenario("forced-tcp-syn-drops") / "captures").glob("*.pcap*")))
    return cap, kit.ledger(cap, slow_s=1.0)


@pytest.fixture(scope="module")
def healthy() -> Any:
    cap = kit.read_capture(sorted((scenario("healthy") / "captures").glob("*.pcap*")))
    return kit.ledger(cap)


def layer_rows(chart: alt.TopLevelMixin) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each layer's spec with the rows of its dataset."""
    spec = chart.to_dict()
    sets = spec.get("datasets", {})
    layers = spec.get("layer", [spec])
    return [(layer, sets[(layer.get("data") or spec["data"])["name"]]) for layer in layers]


def mark_of(layer: dict[str, Any]) -> str:
    mark = layer["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def svg_texts(chart: alt.TopLevelMixin) -> list[str]:
    root = ET.fromstring(vlc.vegalite_to_svg(chart.to_json()))  # well-formed XML, or this raises
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def unanswered_up(led: dict[str, Any]) -> float:
    """The chart's derived segment: the rest of an answered query's latency after the cache's
    upstream query when no upstream answer was seen (the ledger leaves up_s null)."""
    assert led["up_s"] is None and led["before_up_s"] is not None
    return led["latency_s"] - led["before_up_s"] - (led["connect_s"] or 0.0)


def test_upstream_unreachable_bars_end_at_the_latency() -> None:
    cap = kit.read_capture(sorted((scenario("upstream-unreachable") / "captures").glob("*.pcap*")))
    q = kit.ledger(cap, slow_s=1.0).queries
    no_answer = q.filter(pl.col("answered") & pl.col("up_s").is_null() & pl.col("forwarded"))
    assert no_answer.height  # the cache answered by itself: the ledger has no upstream answer
    rows = lv.breakdown_frame(q, top=q.height)
    by_id = {r["query_id"]: r for r in q.iter_rows(named=True)}
    derived = rows.filter(pl.col("segment") == "up_unanswered_s")
    assert set(derived["query_id"]) == set(no_answer["query_id"]) & set(rows["query_id"])
    for r in derived.iter_rows(named=True):
        assert r["seconds"] == pytest.approx(unanswered_up(by_id[r["query_id"]]))
        assert r["segment_label"] == "upstream, no answer seen"
    for _, bar in rows.group_by("rank"):
        assert bar["end_s"].max() == pytest.approx(bar["latency_s"][0], abs=1e-6)
    line = lv.time_went_line(q, slow_s=1.0)
    top = q.group_by("state").len().sort("len", descending=True).row(0, named=True)
    if top["state"] != "unanswered" and no_answer.height > q.height / 2:
        assert line.endswith("waiting on the upstream with no answer seen")


def test_syn_drops_bars_are_the_ledger_and_tcp_connect_dominates(syn_drops: Any) -> None:
    cap, ledger = syn_drops
    q = ledger.queries
    chart = lv.hop_breakdown_chart(q, top=30, client_timeout_s=5.0)
    (bars, rows), (ends, end_rows), (rule, rule_rows) = layer_rows(chart)
    assert mark_of(bars) == "bar" and bars["encoding"]["x"]["field"] == "start_s"
    assert bars["encoding"]["x2"]["field"] == "end_s"
    assert mark_of(ends) == "point" and ends["encoding"]["shape"]["field"] == "state"
    assert mark_of(rule) == "rule" and rule_rows == [{"x": 5.0, "label": "client timeout 5 s"}]
    answered = q.filter(pl.col("answered") & pl.col("latency_s").is_not_null())
    slowest = answered.sort("latency_s", descending=True).head(30)
    # one bar per query, the 30 slowest answered ones, slowest first
    ids = list(dict.fromkeys(r["query_id"] for r in sorted(rows, key=lambda r: r["rank"])))
    assert len(ids) == min(30, answered.height) > 0
    assert sorted(slowest["latency_s"].to_list(), reverse=True) == [
        next(r["latency_s"] for r in rows if r["query_id"] == i) for i in ids
    ]
    by_id = {r["query_id"]: r for r in q.iter_rows(named=True)}
    for i in ids:
        segs = sorted((r for r in rows if r["query_id"] == i), key=lambda r: r["order"])
        led = by_id[i]
        # each segment is the ledger's own column, stacked in order from 0 to the latency
        for r in segs:
            want = led[r["segment"]] if r["segment"] in led else unanswered_up(led)
            assert r["seconds"] == pytest.approx(want)
        assert segs[0]["start_s"] == 0.0
        assert all(a["end_s"] == pytest.approx(b["start_s"]) for a, b in itertools.pairwise(segs))
        assert segs[-1]["end_s"] == pytest.approx(led["latency_s"], abs=1e-3)
        assert {r["state"] for r in segs} == {led["state"]}
    # the scenario drops SYNs towards the upstream: over every answered slow query, a leg that
    # started at once and needed retransmitted SYNs spends most of its time in TCP connect, and
    # those are most of the bars
    every = lv.breakdown_frame(q, top=q.height)
    longest = every.sort("seconds", descending=True).group_by("rank").first()
    started = q.filter(
        pl.col("answered") & (pl.col("syn_retransmits") > 0) & (pl.col("before_up_s") < 0.5)
    )["query_id"]
    ours = longest.filter(pl.col("query_id").is_in(started.implode()))
    assert ours.height == started.len() > 0.5 * longest.height
    assert set(ours["segment"]) == {"connect_s"}
    assert {r["state"] for r in end_rows} & {"syn_wait", "after_give_up"}
    # the connect segment of a query is its connection's handshake in the capture
    syn = q.filter(pl.col("syn_wait") & pl.col("handshake_s").is_not_null()).head(5)
    assert syn.height
    for r in syn.iter_rows(named=True):
        tcp = cap.tcp.filter(
            (pl.col("server_ip") == r["up_server_ip"]) & (pl.col("handshake_s").is_not_null())
        )
        assert r["handshake_s"] in tcp["handshake_s"].to_list()
        assert r["connect_s"] >= r["handshake_s"] - 1e-6


def test_syn_drops_states_table_chart_and_line(syn_drops: Any) -> None:
    _, ledger = syn_drops
    q = ledger.queries
    table = lv.state_breakdown(q)
    counts = q.group_by("state").len()
    assert dict(zip(table["state"], table["queries"], strict=True)) == dict(
        zip(counts["state"], counts["len"], strict=True)
    )
    assert int(table["queries"].sum()) == q.height
    syn = table.filter(pl.col("state") == "syn_wait").row(0, named=True)
    assert syn["connect_s_share"] > 0.5
    shares = q.filter((pl.col("state") == "syn_wait") & pl.col("answered")).select(
        (pl.col("connect_s") / pl.col("latency_s")).median()
    )
    assert syn["connect_s_share"] == pytest.approx(shares.item())
    chart_rows = layer_rows(lv.state_breakdown_chart(q))[0][1]
    syn_rows = {r["segment"]: r for r in chart_rows if r["state"] == "syn_wait"}
    assert syn_rows["connect_s"]["share"] == pytest.approx(100 * syn["connect_s_share"])
    top = counts.sort("len", descending=True).row(0, named=True)
    line = lv.time_went_line(q, slow_s=1.0)
    assert line.startswith(f"of {q.height:,} client queries slower than 1 s or unanswered, ")
    assert f", {top['len']:,} {lv._state_phrase(top['state'], top['len'])}" in line
    if top["state"] == "syn_wait":
        assert line.endswith("in TCP connect (SYN retransmissions)")
    text = " ".join(lv.describe_breakdown(q, ledger.notes, slow_s=1.0, client_timeout_s=5.0))
    slowest = q.filter(pl.col("answered")).sort("latency_s", descending=True).row(0, named=True)
    assert f"The slowest answer, {slowest['qname']} {slowest['qtype']}" in text


def test_healthy_cache_hits_are_one_grey_segment(healthy: Any) -> None:
    q = healthy.queries
    hits = q.filter(pl.col("cache_hit"))
    assert hits.height
    rows = lv.breakdown_frame(hits, top=10)
    assert rows.height == 10 and set(rows["segment"]) == {"cache_s"}
    assert set(rows["segment_label"]) == {"answered from the cache"}
    for r in rows.iter_rows(named=True):
        assert r["end_s"] == pytest.approx(r["latency_s"])
    table = lv.state_breakdown(q)
    hit = table.filter(pl.col("state") == "cache_hit").row(0, named=True)
    assert hit["queries"] == hits.height and hit["cache_s_share"] == pytest.approx(1.0)
    assert hit["before_up_s_share"] is None and hit["connect_s_share"] is None
    fwd = table.filter(pl.col("state") == "forwarded")
    if fwd.height:  # a healthy forwarded query waits on the upstream, not on a TCP connect
        assert fwd["up_s_share"][0] > fwd["connect_s_share"][0]


def test_capture_and_dnstap_are_told_apart() -> None:
    # the healthy run recorded each node twice: the capture and unbound's dnstap
    path = scenario("healthy")
    cap = kit.read_capture(sorted((path / "captures").glob("*.pcap*")))
    tap = kit.read_dnstap(sorted((path / "dnstap").glob("*.fstrm")))
    q = kit.ledger(cap, dnstap=tap).queries
    per_source = q.group_by("source", "state").len()
    table = lv.state_breakdown(q)
    assert sorted(zip(table["source"], table["state"], table["queries"], strict=True)) == sorted(
        zip(per_source["source"], per_source["state"], per_source["len"], strict=True)
    )
    assert set(table["source"]) == {"capture", "dnstap"}
    rows = lv.breakdown_frame(q, top=len(q))
    for r in rows.iter_rows(named=True):
        assert r["label"].startswith(f"{r['rank']}. [{r['source']}] ")
    line = lv.time_went_line(q)
    n = q.filter(pl.col("source") == "capture").height
    assert line.startswith(f"of {n:,} client queries (seen by the capture), ")
    text = lv.describe_breakdown(q, ())
    dn = q.filter(pl.col("source") == "dnstap")
    assert text[-1].startswith(
        f"The dnstap holds {dn.height:,} such queries too, {int(dn['forwarded'].sum()):,} with an "
        "upstream leg"
    )


def test_hostile_names_render_as_text(data_dir: Path) -> None:
    cap = kit.read_capture(data_dir / "capture" / "weird_qnames.pcap")
    q = kit.ledger(cap).queries
    name = q["qname"][0]
    assert "<s>" in name and '"' in name
    texts = svg_texts(lv.hop_breakdown_chart(q))
    # the label is cut to 48 characters: its beginning is drawn as text, markup and all
    label = lv.breakdown_frame(q)["label"][0]
    assert label.startswith(f"1. {name[:20]}")
    assert any(t.startswith(label[:40]) for t in texts), texts
    sentences = lv.describe_breakdown(q, ("no upstream hop seen",))
    html = narrative_html(" ".join(sentences))
    assert "<s>" not in html and "&lt;s&gt;" in html
    line = summary_line_html({"label": "Where the time went", "text": name})
    assert "<s>" not in line and "&lt;s&gt;" in line


def test_no_upstream_says_so(data_dir: Path) -> None:
    cap = kit.read_capture(data_dir / "capture" / "weird_qnames.pcap")
    ledger = kit.ledger(cap)
    assert not lv.has_upstream_leg(ledger.queries)
    text = " ".join(lv.describe_breakdown(ledger.queries, ledger.notes))
    assert "No query has an upstream leg, so the time cannot be split by hop" in text


def test_empty_ledger_says_nothing_was_slow(healthy: Any) -> None:
    q = healthy.queries.clear()
    assert lv.describe_breakdown(q, (), slow_s=1.0) == [
        "In this ledger no client query took 1 s or more, and none went unanswered: "
        "there is no time to break down."
    ]
    assert lv.time_went_line(q) == ""
    chart = lv.hop_breakdown_chart(q)
    assert chart.to_dict()["title"]["subtitle"] == ["no answered query to draw"]


def _render(tmp_path: Path, artefacts: list[Path], **params: Any) -> str:
    out = tmp_path / "report.html"
    result = report.render(
        [NB05],
        output_html=out,
        executed_dir=tmp_path / "executed",
        artefacts=artefacts,
        parameters=params or None,
    )
    if not result.ok:
        keep = REPO / "test-artifacts"
        keep.mkdir(exist_ok=True)
        for run in result.runs:
            if run.executed_ipynb is not None:
                shutil.copy(run.executed_ipynb, keep / f"{run.name}-ledger-err.ipynb")
    assert [(r.name, r.status, r.reason) for r in result.runs] == [(NB05.stem, "ok", "")]
    return out.read_text(encoding="utf-8")


@pytest.mark.notebook
def test_notebook_05_shows_where_the_time_went(tmp_path: Path) -> None:
    art = tmp_path / "forced-tcp-syn-drops"
    shutil.copytree(scenario("forced-tcp-syn-drops"), art)
    html = _render(tmp_path, [art])
    assert "Where did the time go? (per hop)" in html
    assert "Where the time went, per hop: the slowest client queries" in html  # the chart's SVG
    block = re.search(r'<section[^>]*id="summary-lines".*?</section>', html, re.DOTALL)
    assert block is not None, "the header's summary line"
    assert "Where the time went" in block.group(0)
    assert "waited on retransmitted SYNs" in block.group(0)
    assert 'href="#nb-05-upstream-tcp"' in block.group(0)
    assert re.search(r'<p class="dnskit-narrative">Of \d+ client queries slower than 1 s', html)


@pytest.mark.notebook
def test_notebook_05_without_upstream_says_so_escaped(tmp_path: Path, data_dir: Path) -> None:
    art = tmp_path / "weird"
    art.mkdir()
    shutil.copy(data_dir / "capture" / "weird_qnames.pcap", art / "weird_qnames.pcap")
    html = _render(tmp_path, [art], slow_threshold_s=0.0)
    assert "Where did the time go? (per hop)" in html
    assert "No query has an upstream leg, so the time cannot be split by hop" in html
    assert "Where the time went, per hop: the slowest client queries" not in html
    # the name's `<s>` label is text everywhere (narration, tables), never an element
    assert "<s>" not in html
    narration = re.search(r'<p class="dnskit-narrative">(.*?)</p>', html, re.DOTALL)
    assert narration is not None
    assert re.search(
        r"The slowest answer, a\|b\.t\\tab\.n\\nl\.x\\037y\..*q(\"|&#34;|&quot;)&lt;s&gt;",
        narration.group(1),
    )


def test_a_coalesced_query_bar_ends_at_its_latency() -> None:
    # a client that joined an upstream query already outstanding has before_up_s < 0 (the leg
    # began before it asked); its bar is drawn on its own timeline, so the upstream part before
    # its query is cut and the bar still ends at its latency (before, the negative part counted
    # as 0 s and the bar ran past the latency by that much: seen in dnstap on this run)
    run = REPO / "data" / "ledger" / "forced-tcp-stub-clients"
    led = kit.ledger(dnstap=kit.read_dnstap(run / "dnstap"), client_timeout_s=2.0)
    q = led.queries.filter(pl.col("answered"))
    coalesced = q.filter(pl.col("before_up_s") < 0)
    assert coalesced.height
    rows = lv.breakdown_frame(q, top=q.height)
    ids = set(coalesced["query_id"])
    seen = 0
    for _, bar in rows.group_by("rank"):
        lat = bar["latency_s"][0]
        assert bar["start_s"].min() >= 0.0
        assert bar["end_s"].max() == pytest.approx(lat, abs=1e-6)
        assert (bar["end_s"] >= bar["start_s"]).all()
        seen += bar["query_id"][0] in ids
    assert seen == coalesced.height
