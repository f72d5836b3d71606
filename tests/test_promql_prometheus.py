"""kit.promql.evaluate against the real Prometheus (Debian 2.42) on the same backfilled history.

One module-scoped server (tests/prom_server.py): the generated history is backfilled with
``promtool tsdb create-blocks-from openmetrics``, Prometheus serves it on 127.0.0.1, and for every
PromQL string below the kit's answer over the same history (as a metrics frame) must equal
Prometheus's own ``/api/v1/query_range`` answer: same series, same timestamps, values within a
relative 1e-9, NaN where Prometheus says NaN. Debian's Prometheus is 2.x, hence ``compat="2"``.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import require_tool
from prom_server import T0, PromServer, history, utc

from kit import KitWarning
from kit.promql import PromQLError, evaluate, quantile_series

pytestmark = pytest.mark.server

START = T0 + 127.5  # deliberately not aligned with the scrapes
END = T0 + 66 * 60  # 6 minutes past the end of the data: everything goes stale
STEP = 30.0

CASES = [
    # the coredns-mixin's panel query (job=~"$job" resolved by the user)
    'histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket{job=~"coredns|node-local-dns"}[5m])) by (server, zone, le))',
    "histogram_quantile(0.5, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket[2m])))",
    # per series, including the idle zone (all buckets flat: NaN) and 1-minute windows
    "histogram_quantile(0.99, rate(coredns_dns_request_duration_seconds_bucket[1m]))",
    # le="1" and le="1.0" from two probes: merged into one bucket
    "histogram_quantile(0.75, sum by (le) (rate(dns_probe_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.3, sum by (le, probe) (increase(dns_probe_duration_seconds_bucket[3m])))",
    # quantile outside [0, 1]
    "histogram_quantile(1.5, sum by (le) (rate(dns_probe_duration_seconds_bucket[5m])))",
    "histogram_quantile(-0.5, sum by (le) (rate(dns_probe_duration_seconds_bucket[5m])))",
    # rate/irate/increase over resets and gaps, windows of 1 or 2 samples
    "rate(coredns_dns_requests_total[5m])",
    "rate(coredns_dns_requests_total[30s])",
    "rate(coredns_dns_requests_total[25s])",
    "irate(coredns_dns_requests_total[1m])",
    "increase(coredns_dns_responses_total[2m])",
    'increase(coredns_dns_responses_total{rcode!="NOERROR"}[10m])',
    "rate(coredns_dns_request_duration_seconds_count[5m] offset 3m)",
    "delta(coredns_cache_entries[5m])",
    # aggregations
    "sum by (instance) (rate(coredns_dns_requests_total[5m]))",
    "sum without (proto) (rate(coredns_dns_requests_total[5m]))",
    "sum(rate(coredns_dns_requests_total[5m]))",
    "avg by (job) (coredns_cache_entries)",
    "min by (type) (coredns_cache_entries)",
    "max without (instance) (coredns_cache_entries)",
    "count by (job) (coredns_cache_entries)",
    "count(coredns_dns_requests_total)",
    "sum(coredns_cache_entries) by (job, type)",
    # arithmetic with scalars and between vectors
    "coredns_cache_entries * 2 - 1",
    "100 * coredns_cache_entries / 7",
    "-coredns_cache_entries",
    "coredns_cache_entries % 7",
    "coredns_cache_entries ^ 0.5",
    "coredns_cache_entries / 0",
    "2 ^ 3 ^ 0.5 + 1",
    "-2 ^ 2",
    "rate(coredns_dns_request_duration_seconds_sum[5m]) / rate(coredns_dns_request_duration_seconds_count[5m])",
    'sum(rate(coredns_dns_responses_total{rcode="SERVFAIL"}[5m])) / sum(rate(coredns_dns_responses_total[5m]))',
    "sum by (instance, zone) (rate(coredns_dns_responses_total[5m])) / on (instance, zone) sum by (instance, zone, job) (rate(coredns_dns_requests_total[5m]))",
    'sum by (instance, zone) (rate(coredns_dns_responses_total{zone="."}[5m])) - ignoring (zone) sum by (instance) (rate(coredns_dns_requests_total[5m]))',
    # comparisons (filters and bool) and set operators: the mixin's CoreDNSLatencyHigh alert
    'histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket{job="coredns"}[5m])) by (server, zone, instance, le)) > 4',
    'sum by (instance) (rate(coredns_dns_responses_total{rcode="SERVFAIL"}[5m])) / sum by (instance) (rate(coredns_dns_responses_total[5m])) > 0.0001',
    "coredns_cache_entries > 2500",
    "2500 < coredns_cache_entries",
    "coredns_cache_entries >= bool 2500",
    "1 < bool 2",
    "coredns_cache_entries == bool coredns_cache_entries",
    'coredns_cache_entries{type="success"} > on (instance, job) coredns_cache_entries{type="denial"}',
    'coredns_cache_entries{type="success"} <= bool ignoring (type) coredns_cache_entries{type="denial"}',
    'coredns_cache_entries{type="success"} != ignoring (type) coredns_cache_entries{type="denial"}',
    'coredns_cache_entries and on (instance) (coredns_cache_entries{type="denial"} > 2500)',
    "coredns_cache_entries unless coredns_cache_entries > 2500",
    'coredns_cache_entries{type="success"} or coredns_cache_entries{type="denial"} * 2',
    "dns_probe_success or on (job) coredns_cache_entries",
    "sum by (job) (coredns_cache_entries) and on () dns_probe_success",
    "coredns_cache_entries atan2 1000",
    # many-to-one joins: per-node rates and the per-node p99 of NodeLocal DNSCache / CoreDNS
    "rate(coredns_dns_requests_total[5m]) * on (instance) group_left (node) kube_pod_info",
    "sum by (node) (rate(coredns_dns_requests_total[5m]) * on (instance) group_left (node) kube_pod_info)",
    "kube_pod_info * on (instance) group_right (node) rate(coredns_dns_requests_total[5m])",
    "histogram_quantile(0.99, sum by (node, le) (rate(coredns_dns_request_duration_seconds_bucket[5m]) * on (instance) group_left (node) kube_pod_info))",
    "coredns_cache_entries / ignoring (type) group_left sum without (type) (coredns_cache_entries)",
    "coredns_cache_entries > on (instance) group_left (node) kube_pod_info",
    "kube_pod_info == bool on (instance) group_right coredns_cache_entries",
    # more aggregations
    "quantile(0.9, coredns_cache_entries)",
    "quantile by (job) (0.5, coredns_cache_entries)",
    "quantile without (instance) (0, rate(coredns_dns_requests_total[5m]))",
    "quantile(1.5, coredns_cache_entries)",
    "stddev by (job) (coredns_cache_entries)",
    "stdvar(rate(coredns_dns_requests_total[5m]))",
    "group by (job, type) (coredns_cache_entries)",
    # label_replace / label_join (Go template expansion)
    'label_replace(rate(coredns_dns_requests_total[5m]), "ip", "$1", "instance", "(.*):.*")',
    r'label_replace(coredns_cache_entries, "x", "${2}-$1$$", "instance", "10\\.0\\.0\\.(\\d+):(\\d+)")',
    'label_replace(coredns_cache_entries, "y", "$1x$9", "instance", "(.*)")',
    'label_replace(kube_pod_info, "node", "", "node", "node-a")',
    'label_join(coredns_cache_entries, "id", "/", "job", "instance", "type")',
    'sum by (id) (label_join(coredns_cache_entries, "id", "-", "job", "nope"))',
    # subqueries (the grid aligned to multiples of the step; "[1h:]" uses the default 1m)
    "max_over_time(rate(coredns_dns_requests_total[5m])[30m:1m])",
    "max_over_time(histogram_quantile(0.99, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket[5m])))[1h:])",
    "avg_over_time(coredns_cache_entries[10m:45s] offset 2m)",
    "rate(coredns_dns_requests_total[10m:30s])",
    "min_over_time((coredns_cache_entries > 2500)[5m:17s])",
    "count_over_time(dns_probe_success[15m:1m])",
    "last_over_time(sum by (job) (coredns_cache_entries)[2m:10s])",
    # absent (the mixin's CoreDNSDown alert), quantile/stddev over time, round, sgn, sort
    'absent(up{job="kube-dns"} == 1)',
    'absent(coredns_cache_entries{job="coredns", type="nope", instance=~".*"})',
    'absent(dns_probe_success{job="probe", probe="p0"})',
    'absent_over_time(dns_probe_success{probe="p0", job="probe"}[3m])',
    "present_over_time(dns_probe_success[3m])",
    "quantile_over_time(0.9, coredns_cache_entries[5m])",
    "quantile_over_time(0.25, rate(coredns_dns_requests_total[1m])[10m:30s])",
    "stddev_over_time(coredns_cache_entries[5m])",
    "stdvar_over_time(dns_probe_success[10m])",
    "round(coredns_cache_entries / 7)",
    "round(coredns_cache_entries / 7, 0.25)",
    "sgn(coredns_cache_entries - 2500)",
    "sort_desc(coredns_cache_entries)",
    "sort(rate(coredns_dns_requests_total[5m]))",
    # functions over instant vectors and over time
    "abs(-coredns_cache_entries)",
    "ceil(coredns_cache_entries / 7) - floor(coredns_cache_entries / 7)",
    "sqrt(coredns_cache_entries) + ln(coredns_cache_entries) + log2(coredns_cache_entries) + log10(coredns_cache_entries)",
    "exp(coredns_cache_entries / 1000)",
    "clamp_min(coredns_cache_entries, 2500)",
    "clamp_max(coredns_cache_entries, 2500)",
    "sum_over_time(coredns_cache_entries[2m])",
    "avg_over_time(coredns_cache_entries[5m])",
    "min_over_time(coredns_cache_entries[5m])",
    "max_over_time(coredns_dns_requests_total[3m] offset 1m)",
    "count_over_time(coredns_cache_entries[90s])",
    "last_over_time(coredns_cache_entries[10m])",
    "changes(coredns_cache_entries[5m])",
    "resets(coredns_dns_requests_total[30m])",
    "idelta(coredns_dns_requests_total[1m])",
    "vector(1)",
    "time()",
    "time() - 1709251200",
    "scalar(sum(dns_probe_success))",
    "coredns_cache_entries > scalar(avg(coredns_cache_entries))",
    "max_over_time(dns_probe_success[2m]) == bool 0",
    # regex matchers, plain selectors (names kept), offset
    'rate(coredns_dns_requests_total{instance!~"10\\\\.0\\\\.0\\\\.[12]:9153", proto=~"udp|tcp"}[5m])',
    '{__name__=~"coredns_dns_re.*_total", job="coredns", rcode="SERVFAIL"}',
    'coredns_cache_entries{type="success"} offset 10m',
    'coredns_cache_entries{job!="coredns"}',
    # hostile label values: quotes, a newline, '<', a backslash
    "coredns_plugin_enabled",
    "sum by (name) (coredns_plugin_enabled)",
    r'coredns_plugin_enabled{name=~"(?s)we.*<"}',
    r'coredns_plugin_enabled{name=~"back\\\\slash"}',
    r'coredns_plugin_enabled{name="we\"ird\nname<"}',
    r'coredns_plugin_enabled{name!~"(?i)CACHE"}',
    # an average over infinities and NaN (0/0)
    "avg by (job) (coredns_cache_entries / 0)",
    "max(coredns_cache_entries / 0)",
    "min(0 / coredns_cache_entries)",
]


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromServer, pl.DataFrame]]:
    prometheus = require_tool("prometheus")
    promtool = require_tool("promtool", "prometheus")
    openmetrics, frame = history()
    server = PromServer(prometheus, promtool, Path(tmp_path_factory.mktemp("prom")), openmetrics)
    try:
        yield server, frame
    finally:
        server.stop()


def _from_prometheus(body: dict) -> dict[tuple, dict[int, float]]:
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "matrix"
    out: dict[tuple, dict[int, float]] = {}
    for s in body["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        out[key] = {round(t * 1000): float(v) for t, v in s["values"]}
    return out


def _from_kit(df: pl.DataFrame) -> dict[tuple, dict[int, float]]:
    labels = [c for c in df.columns if c not in ("ts", "value")]
    out: dict[tuple, dict[int, float]] = {}
    for row in df.iter_rows(named=True):
        key = tuple(
            sorted(
                ("__name__" if c == "metric" else c, row[c]) for c in labels if row[c] is not None
            )
        )
        ms = round(row["ts"].timestamp() * 1000)
        assert ms not in out.setdefault(key, {}), f"duplicate step {ms} for {key}"
        out[key][ms] = row["value"]
    return out


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def _compare(expr: str, kit_df: pl.DataFrame, body: dict) -> tuple[int, int]:
    want = _from_prometheus(body)
    got = _from_kit(kit_df)
    assert set(got) == set(want), (
        f"{expr}: series differ\nonly kit: {sorted(set(got) - set(want))}\n"
        f"only prometheus: {sorted(set(want) - set(got))}"
    )
    points = nans = 0
    for key, wv in want.items():
        gv = got[key]
        assert set(gv) == set(wv), (
            f"{expr} {key}: steps differ: only kit {sorted(set(gv) - set(wv))[:5]}, "
            f"only prometheus {sorted(set(wv) - set(gv))[:5]}"
        )
        for t, w in wv.items():
            assert _same(gv[t], w), f"{expr} {key} @ {t}: kit {gv[t]!r} != prometheus {w!r}"
            points += 1
            nans += math.isnan(w)
    assert points, f"{expr}: Prometheus returned nothing; the case tests nothing"
    return points, nans


ERRORS = [
    # many-to-one without group_left
    "sum by (instance, proto) (rate(coredns_dns_requests_total[5m])) - ignoring (proto) sum by (instance) (rate(coredns_dns_responses_total[5m]))",
    # two names that collide once rate() drops them
    'rate({__name__=~"coredns_dns_request_duration_seconds_(sum|count)"}[5m])',
    # label_replace/label_join making label sets collide
    'label_replace(coredns_cache_entries, "instance", "", "instance", ".*")',
    'label_join(coredns_cache_entries, "type", "", "nope")',
    # a selector that matches everything
    '{job=~".*"}',
    # not PromQL
    "sum(rate(coredns_dns_requests_total[5m])",
]


@pytest.mark.parametrize("expr", ERRORS)
def test_errors_where_prometheus_errors(prom: tuple[PromServer, pl.DataFrame], expr: str) -> None:
    server, frame = prom
    body = server.query_range(expr, START, END, STEP)
    assert body["status"] == "error", body
    with pytest.raises(PromQLError):
        evaluate(frame, expr, start=utc(START), end=utc(END), step=STEP, compat="2")


@pytest.mark.parametrize("expr", CASES)
def test_evaluate_matches_prometheus(prom: tuple[PromServer, pl.DataFrame], expr: str) -> None:
    server, frame = prom
    body = server.query_range(expr, START, END, STEP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KitWarning)
        got = evaluate(frame, expr, start=utc(START), end=utc(END), step=STEP, compat="2")
    _compare(expr, got, body)


def test_history_exercises_the_edge_cases(prom: tuple[PromServer, pl.DataFrame]) -> None:
    """The comparison above is only meaningful if the history really has the edge cases."""
    server, _ = prom
    expr = "histogram_quantile(0.99, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket[5m])))"
    body = server.query_range(expr, START, END, STEP)
    want = _from_prometheus(body)
    # the incident instance is pinned at CoreDNS's last finite bucket
    assert 8.192 in want[(("instance", "10.0.0.1:9153"),)].values()
    # the idle zone yields NaN (Prometheus's answer, not ours)
    idle = _from_prometheus(
        server.query_range(
            'histogram_quantile(0.5, rate(coredns_dns_request_duration_seconds_bucket{zone=".", job="node-local-dns"}[1m]))',
            START,
            END,
            STEP,
        )
    )
    assert any(math.isnan(v) for s in idle.values() for v in s.values())
    # the counter reset: a raw drop in the 10.0.0.2 counter, which increase() must not show
    resets = _from_prometheus(
        server.query_range(
            'resets(coredns_dns_requests_total{instance="10.0.0.2:9153"}[70m])', END, END, STEP
        )
    )
    assert all(v >= 1 for s in resets.values() for v in s.values()) and resets
    # the scrape gap makes 10.0.0.3's gauge vanish at some steps, i.e. staleness is exercised
    gauge = _from_prometheus(
        server.query_range(
            'coredns_cache_entries{instance="10.0.0.3:9153", type="success"}', START, END, STEP
        )
    )
    (steps,) = gauge.values()
    n_steps = int((END - START) // STEP) + 1
    assert 0 < len(steps) < n_steps


def test_quantile_series_matches_prometheus_and_flags_the_ceiling(
    prom: tuple[PromServer, pl.DataFrame],
) -> None:
    server, frame = prom
    q = quantile_series(
        frame,
        by=("instance",),
        quantiles=(0.5, 0.99),
        start=utc(START),
        end=utc(END),
        step=STEP,
        compat="2",
    )
    for quantile in (0.5, 0.99):
        expr = f"histogram_quantile({quantile}, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket{{}}[5m])))"
        # {} alone is not a valid selector in PromQL, so ask Prometheus without it
        body = server.query_range(expr.replace("{}", ""), START, END, STEP)
        part = q.filter(pl.col("quantile") == quantile).select("ts", "value", "instance")
        _compare(expr, part, body)
    pinned = q.filter(pl.col("at_ceiling"))
    assert pinned.height > 0
    assert pinned["value"].unique().to_list() == [8.192]
    assert pinned["instance"].unique().to_list() == ["10.0.0.1:9153"]
    assert pinned["bucket_upper"].unique().to_list() == [math.inf]
    # interpolated results lie inside their bucket
    inside = q.filter(~pl.col("at_ceiling") & pl.col("value").is_not_nan())
    assert inside.filter(
        (pl.col("value") < pl.col("bucket_lower")) | (pl.col("value") > pl.col("bucket_upper"))
    ).is_empty()


ALIGNED = [
    "rate(coredns_dns_requests_total[1m])",
    "increase(coredns_dns_responses_total[2m])",
    "irate(coredns_dns_requests_total[45s])",
    "coredns_cache_entries",
    "dns_probe_success",
    "sum(dns_probe_success) + 1",
    "delta(dns_probe_success[3m])",
    "histogram_quantile(0.9, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket[1m])))",
]


@pytest.mark.parametrize("expr", ALIGNED)
def test_closed_window_boundaries_match_prometheus_2(
    prom: tuple[PromServer, pl.DataFrame], expr: str
) -> None:
    """Steps on the scrape grid: samples of the jitter-free scrapes sit exactly on ``t - range`` and
    ``t - 5m``, so the 2.x closed-interval rule is what makes these agree."""
    server, frame = prom
    start, end = T0 + 120, T0 + 62 * 60
    body = server.query_range(expr, start, end, 15)
    got = evaluate(frame, expr, start=utc(start), end=utc(end), step=15, compat="2")
    _compare(expr, got, body)


@pytest.mark.parametrize("i", [0, 1, 10, 40, 70])
def test_compat_3_is_compat_2_without_the_left_boundary_sample(
    prom: tuple[PromServer, pl.DataFrame], i: int
) -> None:
    """Prometheus 3 excludes samples at ``t - range``. Independent check: compat 3 at t equals compat 2
    at t over the same frame with exactly those samples removed (and differs from compat 2)."""
    _, frame = prom
    on_grid = sorted(m for m in set(frame["ts"].dt.epoch("ms").to_list()) if m % 15000 == 0)
    t = on_grid[i] / 1000 + 60  # a sample sits exactly on the window start t - 1m
    expr = "rate(coredns_dns_requests_total[1m])"
    boundary = utc(t - 60)
    v3 = evaluate(frame, expr, start=utc(t), end=utc(t), step=15, compat="3")
    v2 = evaluate(frame, expr, start=utc(t), end=utc(t), step=15, compat="2")
    pruned = frame.filter(pl.col("ts") != boundary)
    assert pruned.height < frame.height  # some sample really sits on the boundary
    v2_pruned = evaluate(pruned, expr, start=utc(t), end=utc(t), step=15, compat="2")
    assert _from_kit(v3) == _from_kit(v2_pruned)
    assert _from_kit(v3) != _from_kit(v2)


def test_round_trip_raw_export_through_read_metrics(
    prom: tuple[PromServer, pl.DataFrame], tmp_path: Path
) -> None:
    """Export the raw buckets through the HTTP API (what users save), read them back with
    kit.read_metrics and evaluate the mixin's query: the answer is Prometheus's own."""
    from kit import read_metrics

    server, truth = prom
    selector = (
        '{__name__=~"coredns_dns_request_duration_seconds_bucket|coredns_dns_requests_total"}'
    )
    body = server.get("/api/v1/query", query=f"{selector}[70m]", time=T0 + 61 * 60)
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    export = tmp_path / "raw_export.json"
    export.write_text(json.dumps(body))
    df = read_metrics(export)
    # the export holds exactly the backfilled samples (independent: the generator's ground truth)
    want = truth.filter(
        pl.col("metric").is_in(
            ["coredns_dns_request_duration_seconds_bucket", "coredns_dns_requests_total"]
        )
    )
    key = ["ts", "metric", "instance", "job", "le", "proto", "server", "zone"]
    assert df.height == want.height
    joined = want.select(*key, "value").join(
        df.select(*key, "value"), on=key, how="left", nulls_equal=True, suffix="_api"
    )
    assert joined.filter(
        pl.col("value_api").is_null() | (pl.col("value") != pl.col("value_api"))
    ).is_empty()
    for expr in (
        'histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket{job=~"coredns|node-local-dns"}[5m])) by (server, zone, le))',
        "sum by (instance) (increase(coredns_dns_requests_total[5m]))",
    ):
        got = evaluate(df, expr, start=utc(START), end=utc(END), step=STEP, compat="2")
        _compare(expr, got, server.query_range(expr, START, END, STEP))


def test_regex_dot_does_not_match_newline_in_2_but_does_in_3(
    prom: tuple[PromServer, pl.DataFrame],
) -> None:
    server, frame = prom
    expr = 'coredns_plugin_enabled{name=~"we.*<"}'
    body = server.query_range(expr, START, END, STEP)
    assert body["status"] == "success" and body["data"]["result"] == []  # Go RE2: '.' excludes \n
    kw = {"start": utc(START), "end": utc(END), "step": STEP}
    assert evaluate(frame, expr, compat="2", **kw).is_empty()
    # Prometheus 3 (docs/migration.md: "." now matches newlines)
    assert evaluate(frame, expr, compat="3", **kw)["name"].unique().to_list() == ['we"ird\nname<']


COUNTERS = {
    "coredns_dns_requests_total": ["instance", "job", "proto", "server", "zone"],
    "coredns_dns_responses_total": ["instance", "job", "rcode", "server", "zone"],
    "coredns_dns_request_duration_seconds_count": ["instance", "job", "server", "zone"],
}
GAUGES = {
    "coredns_cache_entries": ["instance", "job", "type"],
    "dns_probe_success": ["job", "probe"],
}
WINDOWS = ["15s", "20s", "30s", "45s", "1m", "90s", "2m", "5m", "7m"]
MATCHERS = [
    "",
    'job="coredns"',
    'job!="coredns"',
    'instance=~"10\\\\.0\\\\.0\\\\.[13].*"',
    'instance!~".*:9253"',
    'zone=~"cluster.*|\\\\."',
]


def _random_vector(rng: random.Random, depth: int) -> str:
    kind = rng.choice(
        ["range", "range", "gauge", "agg", "binop", "scalar", "quantile"]
        if depth
        else ["range", "gauge"]
    )
    if kind == "range" and depth and rng.random() < 0.3:
        fn = rng.choice(["max_over_time", "avg_over_time", "rate", "changes", "last_over_time"])
        step = rng.choice(["", "30s", "1m", "45s"])
        return f"{fn}(({_random_vector(rng, depth - 1)})[{rng.choice(WINDOWS)}:{step}])"
    if kind == "range":
        name = rng.choice(list(COUNTERS))
        fn = rng.choice(
            [
                "rate",
                "irate",
                "increase",
                "delta",
                "idelta",
                "changes",
                "resets",
                "sum_over_time",
                "avg_over_time",
                "min_over_time",
                "max_over_time",
                "count_over_time",
                "last_over_time",
                "stddev_over_time",
                "present_over_time",
                "absent_over_time",
                "quantile_over_time",
            ]
        )
        m = rng.choice(MATCHERS)
        off = rng.choice(["", "", " offset 1m", " offset 150s"])
        if fn == "quantile_over_time":
            return f"{fn}({rng.choice(['0', '0.5', '0.95'])}, {name}{{{m}}}[{rng.choice(WINDOWS)}]{off})"
        return f"{fn}({name}{{{m}}}[{rng.choice(WINDOWS)}]{off})"
    if kind == "gauge":
        name = rng.choice(list(GAUGES))
        sel = f"{name}{{{rng.choice(MATCHERS)}}}" if rng.random() < 0.5 else name
        fn = rng.choice(
            [
                "",
                "",
                "abs",
                "sqrt",
                "ln",
                "ceil",
                "clamp_min",
                "clamp_max",
                "round",
                "sgn",
                "absent",
            ]
        )
        if fn.startswith("clamp"):
            return f"{fn}({sel}, {rng.choice(['0.5', '1000', '-1'])})"
        return f"{fn}({sel})" if fn else sel
    if kind == "agg":
        labels = rng.sample(
            ["instance", "job", "proto", "rcode", "zone", "type"], rng.randint(0, 2)
        )
        op = rng.choice(
            ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile"]
        )
        clause = rng.choice(["by", "without"])
        param = f"{rng.choice(['0', '0.5', '0.9', '1'])}, " if op == "quantile" else ""
        return f"{op} {clause} ({', '.join(labels)}) ({param}{_random_vector(rng, depth - 1)})"
    if kind == "binop":
        op = rng.choice(
            ["+", "-", "*", "/", "%", "^", ">", "<=", "== bool", "!=", "and", "or", "unless"]
        )
        lhs = _random_vector(rng, depth - 1)
        rhs = _random_vector(rng, depth - 1)
        matching = rng.choice(
            [
                "",
                "",
                " on (instance)",
                " ignoring (proto)",
                " on (instance) group_left",
                " ignoring (type) group_right (job)",
            ]
        )
        if op in ("and", "or", "unless") and "group" in matching:
            matching = ""
        return f"({lhs}) {op}{matching} ({rhs})"
    if kind == "scalar":
        op = rng.choice(["+", "-", "*", "/", "^", ">", "< bool", "!="])
        k = rng.choice(["2", "0.5", "-3", "1e3", "0"])
        v = _random_vector(rng, depth - 1)
        return f"{k} {op} ({v})" if rng.random() < 0.5 else f"({v}) {op} {k}"
    q = rng.choice(["0", "0.5", "0.9", "0.99", "1"])
    by = rng.sample(["instance", "job", "zone", "server"], rng.randint(0, 2))
    return (
        f"histogram_quantile({q}, sum by ({', '.join([*by, 'le'])}) "
        f"(rate(coredns_dns_request_duration_seconds_bucket{{{rng.choice(MATCHERS)}}}[{rng.choice(WINDOWS)}])))"
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_expressions_match_prometheus(
    prom: tuple[PromServer, pl.DataFrame], seed: int
) -> None:
    """Seeded random expressions from the supported subset: same answer, or an error on both sides."""
    server, frame = prom
    rng = random.Random(seed)
    compared = errors = 0
    for _ in range(12):
        expr = _random_vector(rng, 2)
        start = T0 + rng.choice([0, 59.999, 127.5, 300, 1234.567])
        end = start + rng.choice([600, 1800, 3900])
        step = rng.choice([15, 17.3, 30, 60, 61.5])
        body = server.query_range(expr, start, end, step)
        if body["status"] == "error":
            assert body["errorType"] == "execution" or "bad_data", body
            with pytest.raises(PromQLError):
                evaluate(frame, expr, start=start, end=end, step=step, compat="2")
            errors += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KitWarning)
            got = evaluate(frame, expr, start=start, end=end, step=step, compat="2")
        want = _from_prometheus(body)
        if want:
            _compare(expr, got, body)
        else:
            assert got.is_empty(), expr
        compared += 1
    assert compared >= 6


def test_bounds_of_the_pasted_dashboard_query(prom: tuple[PromServer, pl.DataFrame]) -> None:
    """evaluate(bounds=True) on the mixin's query: values are Prometheus's, and the bounds agree with
    kit.promql.histogram_quantile() applied to the bucket rates (a separate code path)."""
    from kit.promql import histogram_quantile

    server, frame = prom
    inner = 'sum(rate(coredns_dns_request_duration_seconds_bucket{job=~"coredns|node-local-dns"}[5m])) by (instance, le)'
    expr = f"histogram_quantile(0.99, {inner})"
    kw = {"start": utc(START), "end": utc(END), "step": STEP, "compat": "2"}
    got = evaluate(frame, expr, bounds=True, **kw)
    assert got.columns == [
        "ts",
        "value",
        "instance",
        "quantile",
        "bucket_lower",
        "bucket_upper",
        "at_ceiling",
    ]
    _compare(
        expr, got.select("ts", "value", "instance"), server.query_range(expr, START, END, STEP)
    )
    other = histogram_quantile(evaluate(frame, inner, **kw), 0.99, compat="2")
    key = ["ts", "instance"]
    joined = got.join(other, on=key, how="full", suffix="_hq", coalesce=True)
    assert joined.height == got.height == other.height
    for col in ("bucket_lower", "bucket_upper", "at_ceiling", "quantile"):
        a, b = joined[col], joined[f"{col}_hq"]
        assert (
            (a == b) | (a.is_nan() & b.is_nan()) if a.dtype == pl.Float64 else (a == b)
        ).all(), col
    pinned = got.filter(pl.col("at_ceiling"))
    assert (
        pinned.height
        and set(pinned["value"]) == {8.192}
        and set(pinned["instance"]) == {"10.0.0.1:9153"}
    )
    with pytest.raises(
        PromQLError,
        match="bounds=True needs an expression whose outermost call is histogram_quantile",
    ):
        evaluate(frame, inner, bounds=True, **kw)


def test_empty_side_short_circuits_before_the_duplicate_check(
    prom: tuple[PromServer, pl.DataFrame],
) -> None:
    """The right side has 3 series per instance (one per rcode), which is an error only at steps where
    the left side has any sample: with an empty left side Prometheus answers with nothing."""
    server, frame = prom
    expr = 'coredns_cache_entries{instance="none"} + on (instance) rate(coredns_dns_responses_total[5m])'
    body = server.query_range(expr, START, END, STEP)
    assert body["status"] == "success" and body["data"]["result"] == []
    assert evaluate(frame, expr, start=utc(START), end=utc(END), step=STEP, compat="2").is_empty()
    expr = "coredns_cache_entries + on (instance) rate(coredns_dns_responses_total[5m])"
    assert server.query_range(expr, START, END, STEP)["status"] == "error"
    with pytest.raises(PromQLError, match="found duplicate series for the match group"):
        evaluate(frame, expr, start=utc(START), end=utc(END), step=STEP, compat="2")
