"""kit.analyses.resolver_logs and kit.analyses.metrics: checked against hand-computed values, counts taken from the files by
other means (plain regexes, the lab's own counters in run.json), and Prometheus's own answers
exported next to the raw buckets."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.analyses import metrics as overview
from kit.analyses import resolver_logs as logs
from kit.analyses import upstream as up
from kit.sources.timeline import timeline

UTC = dt.UTC


@pytest.fixture(scope="module")
def sample(repo_root: Path) -> Path:
    return repo_root / "data" / "sample"


@pytest.fixture(scope="module")
def run(sample: Path) -> dict:
    return json.loads((sample / "run.json").read_text())


@pytest.fixture(scope="module")
def unbound_queries(sample: Path) -> pl.DataFrame:
    u = kit.read_unbound_log(sorted((sample / "logs").glob("unbound-node*.log")))
    return logs.combined_queries(unbound=u)


# reply lines of unbound 1.17 (log_reply_info): "info: <ip> <name> <type> <class> <rcode> <secs> <cached> <size>"
_REPLY = re.compile(r"\] unbound\[\d+:\d+\] info: \S+ \S+ \S+ \S+ [A-Z]+ ([0-9.]+) [01] \d+$")


def _reply_durations(path: Path) -> list[float]:
    out = []
    for line in path.read_text().splitlines():
        m = _REPLY.search(line)
        if m:
            out.append(float(m.group(1)))
    return out


# ---------------------------------------------------------------------------------------------
# combined_queries, slow_by, slow_over_time


def test_combined_queries_counts_every_reply_line(
    unbound_queries: pl.DataFrame, sample: Path, run: dict
) -> None:
    assert unbound_queries.schema == logs.COMBINED_SCHEMA
    for node in ("node1", "node2"):
        path = sample / "logs" / f"unbound-{node}.log"
        mine = unbound_queries.filter(pl.col("source").str.ends_with(f"unbound-{node}.log"))
        # same number as the reply lines matched by a plain regex, and as unbound's own counter
        assert mine.height == len(_reply_durations(path))
        assert mine.height == run["counts"]["unbound_stats"][node]["total.num.queries"]
    assert unbound_queries["resolver"].unique().to_list() == ["unbound"]
    assert unbound_queries["proto"].null_count() == unbound_queries.height  # unbound does not say
    assert unbound_queries["ts"].is_sorted()


def test_combined_queries_from_coredns_keep_proto(shared_fixtures: Path) -> None:
    core = kit.read_coredns_log(shared_fixtures / "logs" / "elastic_integrations_test-coredns.log")
    both = logs.combined_queries(coredns=core)
    assert both.height == core.queries.height > 0
    assert both["resolver"].unique().to_list() == ["coredns"]
    # same rows (sorted by time then line): proto carried over row for row
    ref = core.queries.sort(["ts", "source", "line_no"], nulls_last=True)
    assert both["proto"].to_list() == ref["proto"].to_list()
    assert both["line_no"].to_list() == ref["line_no"].to_list()
    assert both["cached"].null_count() == both.height
    assert logs.combined_queries().height == 0
    assert logs.combined_queries().schema == logs.COMBINED_SCHEMA


def test_slow_by_hand_computed() -> None:
    # 6 A (1 slow), 4 AAAA (3 slow), 1 A with no duration (a query, never slow): 11 queries, 4 slow
    df = pl.DataFrame(
        {
            "qtype": ["A"] * 7 + ["AAAA"] * 4,
            "duration_s": [0.01, 0.02, 0.03, 0.04, 0.05, 1.5, None, 1.0, 3.0, 7.0, 0.1],
        }
    )
    out = logs.slow_by(df, "qtype", threshold_s=1.0)
    assert out["qtype"].to_list() == ["AAAA", "A"]  # most slow first
    aaaa, a = out.row(0, named=True), out.row(1, named=True)
    assert (aaaa["queries"], aaaa["slow"]) == (4, 3)  # 1.0 counts: the threshold is inclusive
    assert aaaa["slow_pct"] == pytest.approx(75.0)
    assert aaaa["share_of_slow"] == pytest.approx(75.0)
    assert aaaa["share_of_all"] == pytest.approx(400 / 11)
    assert aaaa["lift"] == pytest.approx(75.0 / (400 / 11))
    assert (a["queries"], a["slow"]) == (7, 1)
    assert a["lift"] == pytest.approx(25.0 / (700 / 11))
    assert a["max_s"] == 1.5
    # no slow query at all: lift is undefined, not 0
    none = logs.slow_by(df, "qtype", threshold_s=100)
    assert none["lift"].null_count() == 2 and none["slow"].sum() == 0
    with pytest.raises(ValueError):
        logs.slow_by(df, "qtype", threshold_s=float("nan"))
    with pytest.raises(KeyError):
        logs.slow_by(df, "rcode")


def test_slow_by_source_on_the_sample(unbound_queries: pl.DataFrame, sample: Path) -> None:
    out = logs.slow_by(unbound_queries, "source", threshold_s=1.0)
    expected = {
        node: sum(d >= 1.0 for d in _reply_durations(sample / "logs" / f"unbound-{node}.log"))
        for node in ("node1", "node2")
    }
    got = {
        Path(r["source"]).stem.removeprefix("unbound-"): r["slow"]
        for r in out.iter_rows(named=True)
    }
    assert got == expected
    assert expected["node1"] > 100 and expected["node2"] == 0  # the TCP node, the UDP control
    assert out["share_of_slow"].sum() == pytest.approx(100.0)


def test_slow_over_time_accounts_for_every_query(
    unbound_queries: pl.DataFrame, sample: Path
) -> None:
    out = logs.slow_over_time(unbound_queries, threshold_s=1.0, every="10s", by=["source"])
    assert out["queries"].sum() == unbound_queries.height
    assert out["slow"].sum() == (unbound_queries["duration_s"] >= 1.0).sum()
    assert set(out["ts"].dt.second().unique().to_list()) <= {0, 10, 20, 30, 40, 50}
    assert (out["slow"] <= out["queries"]).all()
    change = timeline(run_json=sample / "run.json").change_time
    assert change is not None
    before = out.filter(pl.col("ts") + pl.duration(seconds=10) <= change)
    assert before["queries"].sum() > 0 and before["slow"].sum() == 0  # nothing slow before


def test_with_domain() -> None:
    df = pl.DataFrame(
        {"qname": ["a.b.example.com", "com", ".", None, r"x\.y.example.org", "A.Example.ORG"]}
    )
    got = logs.with_domain(df)["domain"].to_list()
    assert got == ["example.com", "com", ".", None, "example.org", "Example.ORG"]  # case kept
    assert logs.with_domain(df, labels=3)["domain"][4] == r"x\.y.example.org"  # escaped dot kept
    with pytest.raises(ValueError):
        logs.with_domain(df, labels=0)


def test_duration_histogram_hand_binned() -> None:
    nan, inf = float("nan"), float("inf")
    df = pl.DataFrame({"duration_s": [0.0005, 0.002, 0.0025, 1.0, 1.05, 3.0, None, nan, inf, -1.0]})
    out = logs.duration_histogram(df, min_s=0.001, bins_per_decade=10)
    # 0.0005 is below min_s: counted in min_s's bin -30 = [10^-3, 10^-2.9) (log edges everywhere);
    # log10(0.002) * 10 = -26.99 and log10(0.0025) * 10 = -26.02: both in bin -27 = [10^-2.7, 10^-2.6)
    # 1.0 and 1.05 in bin 0 = [1, 10^0.1); log10(3) * 10 = 4.77: bin 4 = [10^0.4, 10^0.5)
    # None, NaN, inf and -1 are not durations: not counted
    assert out["bin"].to_list() == [-30, -27, 0, 4]
    assert out["count"].to_list() == [1, 2, 2, 1]
    assert out["lower_s"].to_list() == pytest.approx([10**-3, 10**-2.7, 1.0, 10**0.4])
    assert out["upper_s"].to_list() == pytest.approx([10**-2.9, 10**-2.6, 10**0.1, 10**0.5])
    assert out["share"].to_list() == pytest.approx([1 / 6, 2 / 6, 2 / 6, 1 / 6])


def test_one_histogram_and_one_slow_series_for_logs_and_captures() -> None:
    """issue 15: the log and capture spellings are one implementation with one semantics."""
    assert up.slow_over_time is logs.slow_over_time
    # 10 ** 0.3 s sits on a bin edge: in bin 3, not 2 (the log histogram had no edge tolerance)
    edge = pl.DataFrame({"duration_s": [10**0.3], "latency_s": [10**0.3]})
    assert logs.duration_histogram(edge)["bin"].to_list() == [3]
    assert logs.duration_histogram(edge).equals(up.log_histogram(edge, value="duration_s", by=[]))
    # the capture series now has the empty bins too (silence is zero, not a line across it)
    t0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
    dns = pl.DataFrame(
        {
            "ts": [t0, t0 + dt.timedelta(seconds=12)],
            "latency_s": [1.5, None],
            "answered": [True, False],
            "censored": [False, False],
        }
    )
    got = up.slow_over_time(dns, slow_s=1.0, every="5s")
    assert got.select("ts", "queries", "slow", "unanswered").rows() == [
        (t0, 1, 1, 0),
        (t0 + dt.timedelta(seconds=5), 0, 0, 0),
        (t0 + dt.timedelta(seconds=10), 1, 0, 1),
    ]
    assert got["slow_share"].to_list() == [1.0, None, 1.0]
    # a CoreDNS line logged without a response after 6 s is slow (it has a duration), and the
    # log spelling threshold_s is the same threshold
    log_q = pl.DataFrame({"ts": [t0, t0], "duration_s": [6.0, 0.5], "answered": [False, False]})
    out = logs.slow_over_time(log_q, threshold_s=1.0, every="1m")
    assert out.select("queries", "slow", "unanswered").rows() == [(2, 1, 0)]


# ---------------------------------------------------------------------------------------------
# messages and CoreDNS errors (real CoreDNS logs)


def test_error_summary_counts_consolidated_errors(shared_fixtures: Path) -> None:
    core = kit.read_coredns_log(
        shared_fixtures / "logs" / "elastic_integrations_test-coredns-error.log"
    )
    out = logs.error_summary(core)
    # the file: 4 plain error lines (1.1.1.1:853 dial, 1.0.0.1:853 dial and read, a udp read) and 4
    # "4 errors like ... occurred in last 2s" summaries: 8 lines standing for 4 + 4 * 4 = 20 errors
    assert out["lines"].sum() == 8
    assert out["errors"].sum() == 20
    assert out.row(0, named=True)["errors"] == 16  # the summaries, which carry no upstream
    tcp = out.filter(pl.col("transport") == "tcp").sort("upstream", "op")
    assert tcp.select("upstream", "op", "errors").rows() == [
        ("1.0.0.1:853", "dial", 1),
        ("1.0.0.1:853", "read", 1),
        ("1.1.1.1:853", "dial", 1),
    ]
    assert out["without_ts"].sum() == 8  # no line of this file has a timestamp


def test_log_messages_and_patterns(shared_fixtures: Path) -> None:
    path = shared_fixtures / "logs" / "github_issue_excerpts_errors.log"
    core = kit.read_coredns_log(path)
    msgs = logs.log_messages(coredns=core)
    n_error = sum("[ERROR]" in line for line in path.read_text().splitlines())
    n_warn = sum("[WARNING]" in line for line in path.read_text().splitlines())
    # klog lines of the kubernetes plugin, "E1207 03:34:20.049977 ...", have severity E (error)
    n_klog = sum(bool(re.match(r"E\d{4} ", line)) for line in path.read_text().splitlines())
    assert n_klog == 2
    assert msgs.height == n_error + n_warn + n_klog
    assert set(msgs["level"].unique()) <= {"error", "warning"}
    summary = logs.message_summary(msgs, top=None)
    assert summary["lines"].sum() == msgs.height
    # addresses and numbers collapse: every "read udp A->B: i/o timeout" is one pattern
    reads = summary.filter(pl.col("pattern").str.starts_with("read udp "))
    assert reads.height == 1
    assert reads["pattern"][0] == "read udp <addr>-><addr>: i/o timeout"
    assert reads["lines"][0] == sum(
        bool(re.search(r"\] plugin/errors: \d+ \S+ [A-Z]+: read udp \S+: i/o timeout$", line))
        for line in path.read_text().splitlines()
    )


def test_error_coverage_is_honest_about_unbound(sample: Path) -> None:
    path = sample / "logs" / "unbound-node1.log"
    u = kit.read_unbound_log(path)
    cov = logs.error_coverage(unbound=u)
    row = cov.row(0, named=True)
    assert row["resolver"] == "unbound"
    assert row["lines"] == len(path.read_text().splitlines())  # every line accounted for
    # the sample's unbound logged no error or warning line (levels counted by a plain regex)
    assert row["error_lines"] == len(
        re.findall(r"\] unbound\[\d+:\d+\] (?:error|warning):", path.read_text())
    )
    assert row["upstream_errors"] is None
    assert "does not log upstream timeouts" in row["note"]


def test_onset_hand_computed() -> None:
    change = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    counts = pl.DataFrame(
        {
            "ts": [change - dt.timedelta(minutes=1), change, change + dt.timedelta(minutes=1)] * 2,
            "upstream": ["a"] * 3 + ["b"] * 3,
            "count": [0, 0, 300, 2, 5, 5],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    out = logs.onset(counts, by=["upstream"], change_time=change)
    # bins of 1 minute: the one starting at the change ends after it; b's first bin ends at it
    assert out.rows() == [
        ("a", 300.0, change + dt.timedelta(minutes=1), 60.0, 60.0, 0.0, 300.0),
        ("b", 12.0, change - dt.timedelta(minutes=1), -60.0, 60.0, 2.0, 10.0),
    ]
    # a change 10 s before a bin ends: that bin counts after the change
    mid = logs.onset(counts, by=["upstream"], change_time=change - dt.timedelta(seconds=10))
    b = mid.filter(pl.col("upstream") == "b").row(0, named=True)
    assert (b["before_change"], b["after_change"], b["since_change_s"]) == (0.0, 12.0, -50.0)
    assert logs.onset(counts, by=["upstream"])["since_change_s"].null_count() == 2


def test_connect_failures_match_the_lab_counters(sample: Path, run: dict, tshark: str) -> None:
    cap = kit.read_capture(sample / "captures" / "node1.pcap")
    out = logs.connect_failures(cap.tcp, every="10s")
    # every TCP query unbound sent upstream opened one connection (unbound's num.query.tcpout),
    # and nftables saw each first SYN plus each retransmitted one (syn_seen)
    attempts = int(out["attempts"].sum())
    assert attempts == run["counts"]["unbound_stats"]["node1"]["num.query.tcpout"]
    assert (
        attempts + int(out["syn_retransmits"].sum())
        == run["counts"]["nftables"]["syn_seen"]["packets"]
    )
    assert out["server_ip"].unique().to_list() == [run["topology"]["upstream"]["ip"]]
    change = timeline(run_json=sample / "run.json").change_time
    assert change is not None
    assert out.filter(pl.col("ts") + pl.duration(seconds=10) <= change)["attempts"].sum() == 0
    node2 = kit.read_capture(sample / "captures" / "node2.pcap")
    assert logs.connect_failures(node2.tcp).height == 0  # the UDP control opened none


# ---------------------------------------------------------------------------------------------
# kit.analyses.metrics on the sample's Prometheus exports


@pytest.fixture(scope="module")
def exports(sample: Path) -> pl.DataFrame:
    return overview.read_exports(sample / "prometheus")


def _points(path: Path) -> dict[str, int]:
    doc = json.loads(path.read_text())
    return {r["metric"].get("node", ""): len(r["values"]) for r in doc["data"]["result"]}


def test_read_exports_names_expression_exports_after_their_file(
    exports: pl.DataFrame, sample: Path
) -> None:
    for stem in ("p90_response_time_5s", "p99_response_time_5s"):
        mine = exports.filter(pl.col("metric") == stem)
        expected = _points(sample / "prometheus" / f"{stem}.json")
        assert dict(mine.group_by("node").len().iter_rows()) == expected
    # the same samples as kit.read_metrics, with the file's stem where the metric has no name
    direct = kit.read_metrics(sample / "prometheus")
    assert direct.height == exports.height
    assert direct["metric"].null_count() == 6 * 204  # the six expression exports
    assert exports["metric"].null_count() == 0
    named = exports.filter(pl.col("metric") == "queries_rate_5s")
    assert named["source"].unique().to_list() == ["queries_rate_5s.json"]


def test_histogram_choice(exports: pl.DataFrame) -> None:
    assert overview.latency_histogram_metric(exports) == "unbound_response_time_seconds"
    core = exports.head(3).with_columns(
        pl.lit("coredns_dns_request_duration_seconds_bucket").alias("metric"),
        pl.lit("1").alias("le"),
    )
    assert overview.latency_histogram_metric(pl.concat([exports, core])) == (
        "coredns_dns_request_duration_seconds"
    )
    assert overview.latency_histogram_metric(exports.filter(pl.col("le").is_null())) is None
    assert overview.sample_interval_s(exports, "unbound_response_time_seconds_bucket") == 1.0
    assert overview.highest_finite_bucket(exports, "unbound_response_time_seconds") == 524288.0


def test_quantiles_agree_with_prometheus(exports: pl.DataFrame, sample: Path) -> None:
    tl = timeline(run_json=sample / "run.json")
    q = overview.latency_overview(exports)
    assert overview.label_columns(q) == ["node"]
    mine = overview.phase_summary(q.filter(pl.col("quantile") == 0.99), tl, by=["node"])
    prom = overview.phase_summary(
        overview.exported_quantiles(exports).filter(pl.col("quantile") == 0.99), tl, by=["node"]
    )
    joined = mine.join(prom, on=["node", "phase"], suffix="_prom")
    assert joined.height == 6
    # the export resamples the counters at its step, so rate() is close, not equal: medians per
    # phase within a factor of 2 (one bucket of this power-of-2 histogram) of Prometheus's own
    # histogram_quantile answers, and within 10 % where the signal is strong (node1, incident)
    for r in joined.iter_rows(named=True):
        assert 0.5 <= r["median"] / r["median_prom"] <= 2.0, r
        if (r["node"], r["phase"]) == ("node1", "incident"):
            assert r["median"] == pytest.approx(r["median_prom"], rel=0.1)
    by = {(r["node"], r["phase"]): r["median"] for r in mine.iter_rows(named=True)}
    assert by[("node1", "incident")] > 1.0 > 0.1 > by[("node2", "incident")]
    assert by[("node1", "healthy")] < 0.05


def test_request_rate_agrees_with_prometheus(exports: pl.DataFrame, sample: Path) -> None:
    tl = timeline(run_json=sample / "run.json")
    mine = overview.phase_summary(overview.request_rate(exports), tl, by=["node"])
    # unbound's response-time histogram counts answers that needed recursion: cache misses
    prom = overview.phase_summary(
        exports.filter(pl.col("metric") == "cache_misses_rate_5s"), tl, by=["node"]
    )
    joined = mine.join(prom, on=["node", "phase"], suffix="_prom")
    assert joined.height == 6
    for r in joined.iter_rows(named=True):
        assert r["mean"] == pytest.approx(r["mean_prom"], rel=0.15), r


def test_exported_quantiles_from_names() -> None:
    ts = dt.datetime(2024, 1, 1, tzinfo=UTC)
    df = pl.DataFrame(
        {
            "ts": [ts] * 4,
            "metric": ["p99_latency", "dns_p999", "p50", "queries_total"],
            "value": [1.0, 2.0, 3.0, 4.0],
            "job": [None, None, None, None],
        },
        schema_overrides={"job": pl.String, "ts": pl.Datetime("us", "UTC")},
    )
    out = overview.exported_quantiles(df)
    assert dict(zip(out["metric"], out["quantile"], strict=True)) == {
        "p99_latency": 0.99,
        "dns_p999": 0.999,
        "p50": 0.5,
    }
    assert "job" not in out.columns  # an all-null label is not a series label


def test_phase_summary_and_chart_ceiling() -> None:
    tl = timeline(change_time="2024-01-01T00:01:00Z", fix_time="2024-01-01T00:02:00Z")
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    df = pl.DataFrame(
        {
            "ts": [t0 + dt.timedelta(seconds=s) for s in (0, 30, 60, 90, 120, 150)],
            "value": [1.0, 3.0, 10.0, float("nan"), 2.0, 4.0],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    out = overview.phase_summary(df, tl)
    assert out.rows() == [
        ("before", 2, 2.0, 2.0, 3.0),
        ("after", 1, 10.0, 10.0, 10.0),
        ("fixed", 2, 3.0, 3.0, 4.0),
    ]
    q = pl.DataFrame({"value": [0.001, 2.0], "at_ceiling": [False, False]})
    assert overview.chart_ceiling(q, 8.192) == 8.192
    assert overview.chart_ceiling(q, 524288.0) is None
    assert overview.chart_ceiling(q.with_columns(at_ceiling=pl.lit(True)), 524288.0) == 524288.0
    assert overview.chart_ceiling(q, None) is None


def test_single_scrape_gives_quantiles_since_start(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "netdata_coredns_v1.6.9_some_load.prom"
    m = overview.read_exports(path)
    assert overview.latency_histogram_metric(m) == "coredns_dns_request_duration_seconds"
    assert overview.sample_interval_s(m, "coredns_dns_request_duration_seconds_bucket") is None
    q = overview.latency_overview(m, by=["zone"])
    last = overview.last_quantiles(q)
    # zone "dropped": every request of its 3 servers is in the first bucket (le="0.00025" equals
    # le="+Inf" for each in the file), which
    # histogram_quantile interpolates from 0: p50 = 0.5 * 0.00025, p90 = 0.9 * ..., p99 = 0.99 * ...
    dropped = last.filter(pl.col("zone") == "dropped").row(0, named=True)
    assert (dropped["p50_s"], dropped["p90_s"], dropped["p99_s"]) == pytest.approx(
        (0.000125, 0.000225, 0.0002475)
    )
    # every quantile lies in a bucket whose cumulative counts (read from the file with a regex)
    # bracket its rank
    text = path.read_text()
    for zone in ("coredns.io.", "ya.ru.", "dropped"):
        counts: dict[float, float] = {}
        for le, v in re.findall(
            rf'coredns_dns_request_duration_seconds_bucket{{server="[^"]*",zone="{re.escape(zone)}",le="([^"]+)"}} (\S+)',
            text,
        ):
            counts[float(le)] = counts.get(float(le), 0.0) + float(v)  # summed over servers
        total = counts[float("inf")]
        for r in q.filter(pl.col("zone") == zone).iter_rows(named=True):
            rank = r["quantile"] * total
            below = max((c for le, c in counts.items() if le <= r["bucket_lower"]), default=0.0)
            assert below < rank <= counts[r["bucket_upper"]], (zone, r)
            assert r["bucket_lower"] <= r["value"] <= r["bucket_upper"]
    assert overview.request_rate(m).height == 0  # no rate from one scrape


def test_matchers_select_one_deployment(exports: pl.DataFrame) -> None:
    only2 = overview.latency_overview(exports, matchers='node="node2"')
    every = overview.latency_overview(exports)
    assert only2["node"].unique().to_list() == ["node2"]
    # the same node2 rows as without the matcher: the matcher only drops node1's series
    assert only2.sort("ts", "quantile")["value"].to_list() == pytest.approx(
        every.filter(pl.col("node") == "node2").sort("ts", "quantile")["value"].to_list(),
        nan_ok=True,
    )
    rate = overview.request_rate(exports, matchers='node=~"node1"')
    assert rate["node"].unique().to_list() == ["node1"]
    assert rate.height == overview.request_rate(exports).filter(pl.col("node") == "node1").height


def test_query_logs_without_timestamps(shared_fixtures: Path) -> None:
    # a query log copied from `kubectl logs` without --timestamps: lines have no time
    core = kit.read_coredns_log(shared_fixtures / "logs" / "github_issue_excerpts_querylog.log")
    q = logs.combined_queries(coredns=core)
    assert q.height == core.queries.height > 0
    no_ts = q["ts"].null_count()
    out = logs.slow_over_time(q, every="1m")
    assert out["queries"].sum() == q.height - no_ts  # only timed queries can be binned
    assert logs.slow_by(q, "qtype")["queries"].sum() == q.height  # the rest counts them all


def test_bin_every_widens_for_long_spans(shared_fixtures: Path) -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    hour = pl.Series([t0, t0 + dt.timedelta(hours=1)])
    assert logs.bin_every(hour, "10s") == "10s"  # 360 bins
    assert logs.bin_every(hour, "1m", max_bins=30) == "120s"  # 60 > 30; 3600 / 30 = 120 s
    assert logs.bin_every(hour, "10s", max_bins=100) == "60s"  # needs 36 s: next nice width
    assert logs.bin_every(pl.Series([t0, None]), "1m") == "1m"
    # the real excerpts span 2018-11-21 06:48:51 to 2019-07-25 10:06:40: 21 429 469 s, which in
    # 1000 bins needs 21 429 s per bin: the next nice width is 6 h
    core = kit.read_coredns_log(shared_fixtures / "logs" / "github_issue_excerpts_errors.log")
    assert logs.bin_every(core.errors["ts"], "10s") == "21600s"
    with pytest.raises(ValueError):
        logs.bin_every(hour, "1mo")


def test_error_coverage_counts_physical_coredns_lines(data_dir: Path) -> None:
    """CRI partial records joined into one record still count as the lines they were."""
    path = data_dir / "coredns" / "cri.log"
    c = kit.read_coredns_log(path)
    assert int(c.files["joined_lines"].sum()) > 0  # the case: P parts were joined
    row = logs.error_coverage(coredns=c).row(0, named=True)
    assert row["lines"] == len(path.read_bytes().splitlines())
    assert row["upstream_errors"] == c.errors.height
