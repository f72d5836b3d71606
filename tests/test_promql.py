"""kit.promql without a server: hand-computed cases for what Prometheus 2.42 cannot show us
(Prometheus 3 semantics) and for the parser's errors. Every expected value is derived in a comment.
The comparison with the real Prometheus is in test_promql_prometheus.py."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from kit import KitError, KitWarning
from kit.promql import (
    QUANTILE_SCHEMA,
    PromQLError,
    evaluate,
    histogram_quantile,
    parse_duration,
    quantile_series,
    result_type,
)

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def frame(series: list[tuple[str, dict[str, str], list[tuple[float, float]]]]) -> pl.DataFrame:
    """A metrics frame (kit.read_metrics layout) from (metric, labels, [(seconds, value)])."""
    names = sorted({k for _, labels, _ in series for k in labels})
    rows = []
    for metric, labels, points in series:
        for t, v in points:
            rows.append(
                {
                    "ts": at(t),
                    "metric": metric,
                    "value": float(v),
                    "source": "hand",
                    **{n: labels.get(n) for n in names},
                }
            )
    schema = {
        "ts": pl.Datetime("us", "UTC"),
        "metric": pl.String,
        "value": pl.Float64,
        "source": pl.String,
    }
    schema.update({n: pl.String for n in names})
    return pl.DataFrame(rows, schema=schema)


def one(df: pl.DataFrame, expr: str, t: float, **kw: object) -> pl.DataFrame:
    return evaluate(df, expr, start=at(t), end=at(t), step=15, **kw)


def value(df: pl.DataFrame, expr: str, t: float, **kw: object) -> float | None:
    out = one(df, expr, t, **kw)
    assert out.height <= 1
    return out["value"][0] if out.height else None


# --- rate / increase ------------------------------------------------------------------------------


def test_left_boundary_sample_counts_in_compat_2_only() -> None:
    # samples 0s:100, 30s:100, 60s:130; increase(x[1m]) at 60s
    # compat 2, [0, 60]: 3 samples, result 30, sampled 60 s, no gap to either edge -> 30
    # compat 3, (0, 60]: 30s and 60s; result 30, sampled 30, avg 30, threshold 33; 30 s to the start
    #   (< 33, and the zero point 30*100/30 = 100 s is farther) -> interval 30+30+0 -> 30*60/30 = 60
    df = frame([("x_total", {}, [(0, 100), (30, 100), (60, 130)])])
    assert value(df, "increase(x_total[1m])", 60, compat="2") == pytest.approx(30, rel=1e-12)
    assert value(df, "increase(x_total[1m])", 60, compat="3") == pytest.approx(60, rel=1e-12)
    # rate is increase / 60 s
    assert value(df, "rate(x_total[1m])", 60, compat="3") == pytest.approx(1.0, rel=1e-12)


def test_lookback_boundary() -> None:
    # a single sample at 0 s; at 300 s it is exactly 5 m old: inside [t-5m, t] (2.x), outside (t-5m, t] (3.x)
    df = frame([("g", {"a": "1"}, [(0, 7)])])
    assert value(df, "g", 300, compat="2") == 7
    assert value(df, "g", 300, compat="3") is None
    assert value(df, "g", 299.999, compat="3") == 7
    # older than the lookback: stale, absent in both
    assert value(df, "g", 300.001, compat="2") is None
    # a shorter lookback
    assert value(df, "g", 60, lookback="1m", compat="2") == 7
    assert value(df, "g", 61, lookback="1m", compat="2") is None


def test_zero_point_limit_order_differs_between_2_42_and_3() -> None:
    # samples 30s:10, 45s:25, 60s:40 (1/s); increase(x[1m]) at 60 s. sampled 30, avg 15, threshold 16.5,
    # 30 s to the window start, zero point 30*10/30 = 10 s before the first sample.
    # 2.42: start limited to the zero point first (10), 10 < 16.5 so it is used: 30*(30+10)/30 = 40
    # >= 2.51 / 3.x: 30 >= 16.5 -> avg/2 = 7.5, then min(7.5, 10) = 7.5: 30*(30+7.5)/30 = 37.5
    df = frame([("x_total", {}, [(30, 10), (45, 25), (60, 40)])])
    assert value(df, "increase(x_total[1m])", 60, compat="2") == pytest.approx(40, rel=1e-12)
    assert value(df, "increase(x_total[1m])", 60, compat="3") == pytest.approx(37.5, rel=1e-12)


def test_counter_reset_and_extrapolation() -> None:
    # 0s:10, 15s:20, 30s:5 (restart), 45s:15; increase over [0, 45] (compat 2, range 45s):
    # 20-10 = 10, then the reset adds 5 (from 0), then 10 more: 25; samples touch both edges -> 25
    df = frame([("x_total", {}, [(0, 10), (15, 20), (30, 5), (45, 15)])])
    assert value(df, "increase(x_total[45s])", 45, compat="2") == pytest.approx(25, rel=1e-12)
    # irate uses the last two samples: 15-5 over 15 s
    assert value(df, "irate(x_total[1m])", 45) == pytest.approx(10 / 15, rel=1e-12)
    # irate across the reset itself: the post-reset value over 15 s
    assert value(df, "irate(x_total[1m])", 30) == pytest.approx(5 / 15, rel=1e-12)
    # delta (gauges) ignores resets: 15 - 10 = 5 over [0, 45]
    assert value(df, "delta(x_total[45s])", 45, compat="2") == pytest.approx(5, rel=1e-12)


def test_one_sample_in_the_window_gives_no_rate() -> None:
    df = frame([("x_total", {}, [(0, 1), (60, 2)])])
    assert value(df, "rate(x_total[30s])", 60) is None
    assert value(df, "irate(x_total[30s])", 60) is None


def test_extrapolation_half_interval_when_far_from_the_edges() -> None:
    # samples 100s..160s every 15 s, +15 each (1/s); rate(x[5m]) at 300 s (compat 3):
    # result 60, sampled 60, avg 15, threshold 16.5; 100 s to the start and 140 s to the end are both
    # beyond the threshold -> 7.5 s each; zero point 60*100/60 = 100 s is farther than 7.5.
    # increase = 60 * (60 + 15) / 60 = 75; rate = 75 / 300 = 0.25
    df = frame([("x_total", {}, [(100 + 15 * i, 100 + 15 * i) for i in range(5)])])
    assert value(df, "increase(x_total[5m])", 300) == pytest.approx(75, rel=1e-12)
    assert value(df, "rate(x_total[5m])", 300) == pytest.approx(0.25, rel=1e-12)


# --- aggregation, arithmetic, matching ------------------------------------------------------------


@pytest.fixture
def gauges() -> pl.DataFrame:
    return frame(
        [
            ("g", {"instance": "a", "job": "dns", "zone": "."}, [(0, 1)]),
            ("g", {"instance": "b", "job": "dns", "zone": "."}, [(0, 5)]),
            ("g", {"instance": "c", "job": "web", "zone": "cluster.local."}, [(0, 6)]),
            ("h", {"instance": "a", "job": "dns", "zone": "."}, [(0, 2)]),
            ("h", {"instance": "b", "job": "dns", "zone": "."}, [(0, 4)]),
        ]
    )


def test_aggregations(gauges: pl.DataFrame) -> None:
    out = one(gauges, "sum by (job) (g)", 10)
    assert out.columns == ["ts", "value", "job"]
    assert dict(zip(out["job"], out["value"], strict=True)) == {"dns": 6.0, "web": 6.0}  # 1+5, 6
    assert value(gauges, "avg(g)", 10) == pytest.approx(4.0)  # (1+5+6)/3
    assert value(gauges, "min(g)", 10) == 1
    assert value(gauges, "max(g)", 10) == 6
    assert value(gauges, "count(g)", 10) == 3
    out = one(gauges, "max without (instance) (g)", 10)
    assert out.columns == ["ts", "value", "job", "zone"]  # name dropped too
    assert sorted(out["value"].to_list()) == [5.0, 6.0]


def test_vector_matching(gauges: pl.DataFrame) -> None:
    # g / h matches on all labels but the name: instance a 1/2, b 5/4; c has no partner
    out = one(gauges, "g / h", 10)
    assert dict(zip(out["instance"], out["value"], strict=True)) == {"a": 0.5, "b": 1.25}
    assert "metric" not in out.columns
    # on(instance) keeps only that label
    out = one(gauges, "g - on (instance) h", 10)
    assert out.columns == ["ts", "value", "instance"]
    # scalar arithmetic keeps labels, drops the name; precedence: 2 + 3 * g, unary minus below ^
    assert dict(
        zip(
            one(gauges, "2 + 3 * g", 10)["instance"],
            one(gauges, "2 + 3 * g", 10)["value"],
            strict=True,
        )
    ) == {
        "a": 5.0,
        "b": 17.0,
        "c": 20.0,
    }
    assert value(gauges, "-2 ^ 2", 10) == -4.0
    assert value(gauges, "2 ^ 3 ^ 2", 10) == 512.0  # right-associative: 2^9
    assert value(gauges, "7 % -3", 10) == 1.0  # Go math.Mod: sign of the dividend
    assert value(gauges, "-7 % 3", 10) == -1.0
    assert math.isinf(value(gauges, "1 / 0", 10))
    assert math.isnan(value(gauges, "0 / 0", 10))


def test_selectors_and_matchers(gauges: pl.DataFrame) -> None:
    out = one(gauges, 'g{zone=~"cluster\\\\..*"}', 10)
    assert out["instance"].to_list() == ["c"]
    assert out["metric"].to_list() == ["g"]  # plain selectors keep the name
    assert one(gauges, 'g{job!~"d.s"}', 10)["instance"].to_list() == ["c"]
    assert one(gauges, 'g{job!="dns"}', 10)["instance"].to_list() == ["c"]
    # a regex is anchored, like Prometheus: "dn" does not match "dns"
    assert one(gauges, 'g{job=~"dn"}', 10).is_empty()
    # an empty matcher matches series without the label
    assert one(gauges, '{__name__=~"g|h", missing=""}', 10).height == 5
    assert sorted(one(gauges, '{__name__=~"g|h"}', 10)["metric"].unique().to_list()) == ["g", "h"]


def test_result_layout_and_range_steps() -> None:
    df = frame([("g", {"b": "2", "a": "1"}, [(0, 1), (60, 2), (120, 3)])])
    out = evaluate(df, "g * 10", start=at(0), end=at(150), step="30s")
    assert out.schema == pl.Schema(
        {"ts": pl.Datetime("us", "UTC"), "value": pl.Float64, "a": pl.String, "b": pl.String}
    )
    # steps 0, 30, ..., 150: newest sample at or before each step
    assert out["ts"].to_list() == [at(s) for s in (0, 30, 60, 90, 120, 150)]
    assert out["value"].to_list() == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
    # default start/end: the frame's first and last sample
    assert evaluate(df, "g", step=60)["ts"].to_list() == [at(0), at(60), at(120)]
    # Unix seconds and ISO strings are accepted too
    s = T0.timestamp()
    assert evaluate(df, "g", start=s, end=s + 120, step=60).equals(
        evaluate(
            df,
            "g",
            start="2024-03-01T00:00:00Z",
            end="2024-03-01T00:02:00Z",
            step=dt.timedelta(minutes=1),
        )
    )


def test_duplicate_samples_keep_the_first_with_a_warning() -> None:
    df = frame([("g", {}, [(0, 1), (0, 2), (30, 3)])])
    with pytest.warns(KitWarning, match=r"1 duplicate samples .* the first one was kept"):
        assert value(df, "g", 10) == 1


def test_grafana_variables() -> None:
    df = frame([("x_total", {"job": "coredns"}, [(0, 0), (60, 60)])])
    expr = 'sum(rate(x_total{job=~"$job"}[$__rate_interval]))'
    assert (
        value(
            df,
            expr,
            60,
            variables={"job": "coredns|nodelocal", "__rate_interval": "1m"},
            compat="2",
        )
        == 1.0
    )
    with pytest.raises(
        PromQLError, match=r"unresolved Grafana variable '\$job'; pass variables=\{'job': \.\.\.\}"
    ):
        evaluate(df, expr, start=at(0), end=at(60), step=60)


# --- histogram_quantile -------------------------------------------------------------------------


def buckets(*pairs: tuple[str, float], ts: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [at(ts)] * len(pairs),
            "le": [p[0] for p in pairs],
            "value": [float(p[1]) for p in pairs],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "le": pl.String, "value": pl.Float64},
    )


@pytest.mark.parametrize(
    ("q", "expected", "lower", "upper", "pinned"),
    [
        # counts 10 / 15 / 20 (le 0.1 / 0.2 / +Inf)
        (0.5, 0.1, 0.0, 0.1, False),  # rank 10 -> first bucket, full: 0 + 0.1*10/10
        (0.25, 0.05, 0.0, 0.1, False),  # rank 5: lowest bucket interpolated from 0
        (0.6, 0.14, 0.1, 0.2, False),  # rank 12 -> (0.1, 0.2]: 0.1 + 0.1*(12-10)/5
        (0.9, 0.2, 0.2, math.inf, True),  # rank 18 > 15: pinned at the last finite bound
        (1.0, 0.2, 0.2, math.inf, True),
        (-0.1, -math.inf, math.nan, math.nan, False),
        (1.1, math.inf, math.nan, math.nan, False),
    ],
)
def test_histogram_quantile_bounds(
    q: float, expected: float, lower: float, upper: float, pinned: bool
) -> None:
    out = histogram_quantile(
        buckets(("0.1", 10), ("+Inf", 20), ("0.2", 15)), q
    )  # unsorted on purpose
    assert out.schema == pl.Schema({"ts": pl.Datetime("us", "UTC"), **QUANTILE_SCHEMA})
    row = out.row(0, named=True)
    assert row["value"] == pytest.approx(expected, rel=1e-12) or row["value"] == expected
    for key, want in (("bucket_lower", lower), ("bucket_upper", upper)):
        assert (math.isnan(row[key]) and math.isnan(want)) or row[key] == want
    assert row["at_ceiling"] is pinned


def test_histogram_quantile_edge_cases() -> None:
    def q50(*pairs: tuple[str, float], compat: str = "3") -> float:
        return histogram_quantile(buckets(*pairs), 0.5, compat=compat)["value"][0]  # type: ignore[arg-type]

    # le="1" and le="1.0" are the same bucket: 4+4 = 8 of 10 below 1 -> rank 5 in (0, 1]: 5/8
    assert q50(("1", 4), ("1.0", 4), ("+Inf", 10)) == pytest.approx(0.625)
    # non-monotonic counts are raised to the running maximum: 0.2 gets 10 -> rank 10 in (0, 0.1]
    assert q50(("0.1", 10), ("0.2", 8), ("+Inf", 20)) == pytest.approx(0.1)
    assert math.isnan(q50(("0.1", 1), ("0.2", 2)))  # no +Inf bucket
    assert math.isnan(q50(("0.1", 0), ("+Inf", 0)))  # no observations (a rate over idle time)
    assert math.isnan(q50(("+Inf", 5)))  # fewer than two buckets
    assert q50(("-1", 6), ("0", 8), ("+Inf", 10)) == -1.0  # rank in a bucket with bound <= 0
    # CoreDNS's real layout: 3 of 100 observations above 8.192 s -> p99 pinned at 8.192
    les = [0.00025 * 2**k for k in range(16)]
    pairs = [(repr(round(le, 6)), 97.0) for le in les] + [("+Inf", 100.0)]
    out = histogram_quantile(buckets(*pairs), [0.5, 0.99])
    # p50: rank 50; the first bucket already holds 97 -> 0 + 0.00025 * 50/97 (interpolated from 0)
    assert out["value"].to_list() == [pytest.approx(0.00025 * 50 / 97, rel=1e-12), 8.192]
    assert out["at_ceiling"].to_list() == [False, True]


def test_histogram_quantile_ignores_float_noise_in_compat_3_only() -> None:
    # counts 10, 10*(1+1e-13) (float noise), 20: compat 3 treats the second as equal to the first
    # (relative delta <= 1e-12), compat 2 keeps it. q such that rank = 10*(1+5e-14), between them:
    # compat 2 -> second bucket, 0.1 + 0.1 * (5e-13 / 1e-12) = 0.15; compat 3 -> both finite buckets
    # hold 10 < rank, so the rank lies beyond the last finite bucket: pinned at 0.2
    noisy = 10 * (1 + 1e-13)
    q = 10 * (1 + 5e-14) / 20
    b = buckets(("0.1", 10), ("0.2", noisy), ("+Inf", 20))
    v2 = histogram_quantile(b, q, compat="2")["value"][0]
    v3 = histogram_quantile(b, q, compat="3")["value"][0]
    assert v2 == pytest.approx(0.15, rel=1e-2)
    assert v3 == 0.2


def test_quantile_series_columns() -> None:
    series = []
    for inst in ("a", "b"):
        for le, per_s in (("0.1", 1.0), ("0.2", 2.0), ("+Inf", 2.0)):
            series.append(
                (
                    "d_bucket",
                    {"instance": inst, "le": le},
                    [(t, per_s * t) for t in range(0, 601, 15)],
                )
            )
    df = frame(series)
    out = quantile_series(df, "d", quantiles=(0.5, 0.9), start=at(300), end=at(600), step="5m")
    assert out.columns == ["ts", "instance", *QUANTILE_SCHEMA]
    # rates 1, 2, 2 per s: p50 rank 1 of 2 -> 0.1 (first bucket full); p90 rank 1.8 -> 0.1 + 0.1*0.8
    got = {
        (r["instance"], r["quantile"]): r["value"]
        for r in out.filter(pl.col("ts") == at(600)).iter_rows(named=True)
    }
    assert got == {
        ("a", 0.5): pytest.approx(0.1),
        ("a", 0.9): pytest.approx(0.18),
        ("b", 0.5): pytest.approx(0.1),
        ("b", 0.9): pytest.approx(0.18),
    }


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "limitk(3, x)",
            "aggregation 'limitk' is not supported (supported: avg, bottomk, count, count_values, group, max, min, quantile, stddev, stdvar, sum, topk) at position 0",
        ),
        (
            "histogram_count(x)",
            "function histogram_count() is not supported (supported: abs, absent, absent_over_time, acos,",
        ),
        ("abs(x, 1)", "abs() takes 1 argument(s), got 2 at position 0"),
        ("abs(x[5m])", "a range vector (x[5m]) cannot be the result of an expression"),
        ("vector(x)", "vector() expects a scalar as argument 1 at position 0"),
        ("nosuch(x)", "unknown function nosuch() at position 0"),
        ("1 > 2", "comparisons between scalars must use the bool modifier at position 2"),
        ("x and 1", "set operator 'and' not allowed in binary scalar expression at position 2"),
        ("x + bool 1", "the 'bool' modifier is only valid with comparisons at position 4"),
        ("x / group_left y", "group_left needs on(...) or ignoring(...) before it at position 4"),
        ("x and on(a) group_left y", "no grouping allowed for 'and' operation at position 12"),
        (
            "x / on(a) group_left(a) y",
            "label 'a' must not occur in ON and GROUP clause at once at position 10",
        ),
        (
            "max_over_time(x[5m][1m:])",
            "a range '[...]' cannot follow a range vector at position 19",
        ),
        (
            "rate((x + 1)[5m])",
            "a range '[5m]' may only follow a selector (for an expression use a subquery '[5m:1m]') at position 12",
        ),
        (
            "x[5m:1m]",
            "a subquery (x[1h:1m]) is a range vector: wrap it in max_over_time(), rate()... at position 1",
        ),
        ("x @ 100 @ 200", "'@ <timestamp>' may not be set multiple times at position 8"),
        ("sum(x) @ 100", "'@' may only follow a selector or a subquery at position 7"),
        ("rate(x)", "rate() needs a range selector argument like x[5m] at position 0"),
        (
            "x[5m]",
            "a range vector (x[5m]) cannot be evaluated over a time range; use rate(), increase()... at position 0",
        ),
        ("sum(x", "expected ')', got 'end of expression' at position 5"),
        ('x{a="b}', "unterminated string literal at position 4"),
        ('x{a~"b"}', "unexpected character '~' at position 3"),
        (
            '{a=""}',
            "vector selector must contain at least one matcher that does not match the empty string at position 0",
        ),
        ("", "empty expression at position 0"),
        ('x{a=~"("}', "invalid regular expression"),
        (
            'x{a=~"b(?=c)"}',
            "invalid regular expression: '(?=' (lookaround, backreference) is not RE2 syntax at position 5",
        ),
    ],
)
def test_errors_name_the_construct_and_position(expr: str, message: str) -> None:
    df = frame([("x", {"a": "b"}, [(0, 1)])])
    with pytest.raises(PromQLError) as info:
        evaluate(df, expr, start=at(0), end=at(0), step=15)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_parse_duration() -> None:
    assert parse_duration("5m") == 300_000
    assert parse_duration("1h30m") == 5_400_000
    assert parse_duration("1d2h3m4s5ms") == 93_784_005
    assert parse_duration("1w") == 7 * 86_400_000
    for bad in ("5", "m", "5m1h", "1.5m", "5mm", ""):
        with pytest.raises(PromQLError):
            parse_duration(bad)


def test_source_is_not_a_label_and_empty_labels_are_absent() -> None:
    # the same series exported in two files (source differs), one with zone="" instead of no zone:
    # Prometheus treats "" as absent, so this is ONE series with samples from both files
    a = frame([("g", {"instance": "a"}, [(0, 1), (60, 2)])])
    b = frame([("g", {"instance": "a", "zone": ""}, [(120, 3)])]).with_columns(
        pl.lit("other.json").alias("source")
    )
    both = pl.concat([a.with_columns(pl.lit(None, dtype=pl.String).alias("zone")), b])
    out = evaluate(both, "g", start=at(0), end=at(120), step=60)
    assert out.columns == ["ts", "value", "metric", "instance"]
    assert out["value"].to_list() == [1.0, 2.0, 3.0]
    # and a rate spans both files: (3-1) over 120 s with samples on both edges (compat 2) = 1/60
    assert value(both, "rate(g[2m])", 120, compat="2") == pytest.approx(1 / 60, rel=1e-12)


def test_label_columns_must_be_strings() -> None:
    df = frame([("g", {"instance": "a"}, [(0, 1)])]).with_columns(pl.lit(1).alias("port"))
    with pytest.raises(
        KitError, match=r"label columns must be String, got \[\('port', 'Int32'\)\]"
    ):
        evaluate(df, "g", start=at(0), end=at(0), step=60)


@pytest.mark.parametrize("compat", ["2", "3"])
def test_vectorised_quantiles_equal_the_step_by_step_transcription(compat: str) -> None:
    """evaluate() computes quantiles column-wise; _bucket_quantile is the line-by-line transcription
    of Prometheus's bucketQuantile. Random bucket sets (duplicated le, decreasing counts, float noise,
    zeros, bounds <= 0, no +Inf, q outside [0, 1]) must give identical results either way."""
    import random

    import numpy as np

    from kit.promql._histogram import _bucket_quantile, _quantile_matrix

    rng = random.Random(7)
    for _ in range(300):
        r = rng.randint(1, 6)
        ubs = sorted(rng.choice([-1.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf]) for _ in range(r))
        if rng.random() < 0.8:
            ubs.append(math.inf)
        t = 5
        v = np.array(
            [
                [rng.choice([0.0, 1.0, 2.0, 5.0, 5.0 * (1 + 1e-13), 9.0]) for _ in range(t)]
                for _ in ubs
            ]
        )
        q = np.array(
            [rng.choice([0.0, 0.25, 0.5, 0.9, 0.99, 1.0, -0.5, 1.5, math.nan]) for _ in range(t)]
        )
        p = np.ones_like(v, dtype=bool)
        val, lo, up, pin, pres = _quantile_matrix(q, np.array(ubs), v, p, compat)
        assert pres.all()
        for k in range(t):
            want = _bucket_quantile(float(q[k]), list(zip(ubs, v[:, k], strict=True)), compat)
            got = (val[k], lo[k], up[k], bool(pin[k]))
            for g, w in zip(got, want, strict=True):
                assert (
                    isinstance(w, float) and math.isnan(w) and math.isnan(g)
                ) or g == pytest.approx(w, rel=1e-12), (
                    ubs,
                    v[:, k],
                    q[k],
                    got,
                    want,
                )


# --- real exports (../shared/fixtures/metrics) through kit.read_metrics ----------------------------


def test_real_coredns_1_1_scrape(shared_fixtures: Path) -> None:
    """DataDog's CoreDNS 1.1.0 exposition (e-notation counts). Expected values by hand from the file:
    zone "." has 8.219674e+06 observations; le=0.00025 holds 7.794767e+06, le=0.0005 8.191211e+06."""
    from kit import read_metrics

    t = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    df = read_metrics(
        shared_fixtures / "metrics" / "datadog_coredns_v1.1.0_metrics.prom", scrape_time=t
    )
    sel = 'coredns_dns_request_duration_seconds_bucket{zone="."}'
    # p99: rank 0.99 * 8219674 falls in (0.00025, 0.0005]: 0.00025 + 0.00025 * (rank - 7794767) / 396444
    rank = 0.99 * 8219674
    want = 0.00025 + 0.00025 * ((rank - 7794767) / (8191211 - 7794767))
    got = evaluate(df, f"histogram_quantile(0.99, {sel})", start=t, end=t, step=60)
    assert got.columns == ["ts", "value", "zone"]
    assert got["value"].to_list() == [pytest.approx(want, rel=1e-12)]
    # p100: the last observation is in (1.024, 2.048] (8219673 -> 8219674), rank 1 of 1 -> 2.048
    got = evaluate(df, f"histogram_quantile(1, {sel})", start=t, end=t, step=60)
    assert got["value"].to_list() == [2.048]
    # the same through histogram_quantile() keeps the bucket bounds
    buckets = evaluate(df, sel, start=t, end=t, step=60).select("ts", "le", "value")
    q = histogram_quantile(buckets, [0.99, 1.0])
    assert q.select("bucket_lower", "bucket_upper").rows() == [(0.00025, 0.0005), (1.024, 2.048)]


def test_real_coredns_1_6_scrape_empty_server_label(shared_fixtures: Path) -> None:
    """netdata's CoreDNS 1.6.9 sample has server="" for zone "dropped": Prometheus treats an empty
    label as absent, so it forms its own group without a server label. Counts from `grep` of the file:
    7 (server, zone) groups of 17 buckets; servers "", "dns://:53" (3 zones), "dns://:54" (3 zones)."""
    from kit import read_metrics

    t = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    df = read_metrics(
        shared_fixtures / "metrics" / "netdata_coredns_v1.6.9_some_load.prom", scrape_time=t
    )
    got = evaluate(
        df,
        "count by (server) (coredns_dns_request_duration_seconds_bucket)",
        start=t,
        end=t,
        step=60,
    )
    counts = {r["server"]: r["value"] for r in got.iter_rows(named=True)}
    assert counts == {None: 17.0, "dns://:53": 51.0, "dns://:54": 51.0}
    p50 = evaluate(
        df,
        'histogram_quantile(0.5, coredns_dns_request_duration_seconds_bucket{server="", zone="dropped"})',
        start=t,
        end=t,
        step=60,
    )
    # 21 observations all <= 0.00025: rank 10.5 of 21 in (0, 0.00025] -> 0.00025 * 10.5 / 21
    assert p50["value"].to_list() == [pytest.approx(0.000125, rel=1e-12)]


# --- issue 11: syntax Prometheus accepts -----------------------------------------------------------


@pytest.fixture
def requests() -> pl.DataFrame:
    return frame(
        [
            ("http_requests", {"job": "api", "group": "production", "instance": "0"}, [(0, 100)]),
            ("http_requests", {"job": "api", "group": "canary", "instance": "0"}, [(0, 300)]),
            ("http_requests", {"job": "app", "group": "production", "instance": "0"}, [(0, 500)]),
            ("http_requests", {"job": "app", "group": "PROduction", "instance": "1"}, [(0, 700)]),
        ]
    )


def rows(df: pl.DataFrame) -> list[dict[str, object]]:
    return df.drop("ts").to_dicts()


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        ("SUM(http_requests) BY (job)", "sum by (job) (http_requests)"),
        ("SUM BY (job) (http_requests)", "sum by (job) (http_requests)"),
        ("COUNT WITHOUT (instance) (http_requests)", "count without (instance) (http_requests)"),
        ("http_requests AND ON () vector(1)", "http_requests and on () vector(1)"),
        ("http_requests AND IGNORING (job, group, instance) vector(1)", "http_requests"),
        ("http_requests UNLESS http_requests{job='api'}", "http_requests{job='app'}"),
        ("http_requests > BOOL 200", "http_requests > bool 200"),
        ("http_requests OFFSET 0s", "http_requests"),
        (
            "http_requests / ON (job) GROUP_LEFT SUM BY (job) (http_requests)",
            "http_requests / on (job) group_left sum by (job) (http_requests)",
        ),
    ],
)
def test_keywords_are_case_insensitive(requests: pl.DataFrame, upper: str, lower: str) -> None:
    # PromQL's lexer lower-cases keywords and aggregation operators (SUM, BY, AND, ON, IGNORING,
    # BOOL, OFFSET, GROUP_LEFT); before, 'SUM' was an "unknown function" and 'ON' a metric name
    want = one(requests, lower, 0)
    assert not want.is_empty()
    assert rows(one(requests, upper, 0)) == rows(want)


def test_function_names_stay_case_sensitive(requests: pl.DataFrame) -> None:
    # Prometheus: "unknown function with name RATE"
    with pytest.raises(PromQLError, match="unknown function RATE"):
        one(requests, "RATE(http_requests[5m])", 0)


def test_re2_inline_flags_inside_a_group(requests: pl.DataFrame) -> None:
    # RE2 applies (?i) to the rest of the enclosing group; Python's re only takes flags at the start
    # of the pattern (it raised "global flags not at the start").
    def groups(expr: str) -> list[str]:
        got = one(requests, expr, 0)
        return sorted(got["group"].to_list()) if got.height else []

    # 'PRO' in any case, then 'duction' as written: production x2 and PROduction
    assert groups('http_requests{group=~"((?i)PRO)duction"}') == [
        "PROduction",
        "production",
        "production",
    ]
    # the flag ends with its group: 'DUCTION' after it stays case-sensitive -> no match
    assert groups('http_requests{group=~"((?i)pro)DUCTION"}') == []
    # across '|' inside the group, as RE2: 'x(?i)y|canary' means 'xy' or 'canary', both insensitive
    assert groups('http_requests{group=~"x(?i)y|CANARY"}') == ["canary"]
    # (?i) at the very start keeps working
    assert groups('http_requests{group=~"(?i)production"}') == [
        "PROduction",
        "production",
        "production",
    ]


def test_parenthesised_string_arguments(requests: pl.DataFrame) -> None:
    # Prometheus accepts any parenthesised string where a string is expected
    plain = 'label_replace(http_requests, "dst", "v-$1", "group", "(.*)")'
    wrapped = 'label_replace(((http_requests)), ("dst"), (("v-$1")), ("group"), ((("(.*)"))))'
    got = one(requests, wrapped, 0)
    assert rows(got) == rows(one(requests, plain, 0))
    assert sorted(got["dst"].to_list()) == ["v-PROduction", "v-canary"] + ["v-production"] * 2
    joined = one(requests, 'label_join(http_requests, ("j"), ("-"), ("job"), (("group")))', 0)
    assert "api-canary" in joined["j"].to_list()
    with pytest.raises(PromQLError, match="expects a string here"):
        one(requests, "label_replace(http_requests, 1, 'a', 'b', 'c')", 0)
    with pytest.raises(PromQLError, match="a string literal is only valid as an argument"):
        one(requests, '"foo"', 0)


# --- issue 11: compat versions ----------------------------------------------------------------------


@pytest.mark.parametrize("compat", ["2", "2.42", "2.50", "2.53", "2.53.1", "2.55", "3"])
def test_compat_versions_accepted(requests: pl.DataFrame, compat: str) -> None:
    assert value(requests, "sum(http_requests)", 0, compat=compat) == 1600


@pytest.mark.parametrize("compat", ["1", "2.41", "2.56", "3.5", "4", "two", "", 2])
def test_compat_versions_rejected(requests: pl.DataFrame, compat: object) -> None:
    with pytest.raises(ValueError, match="compat"):
        one(requests, "sum(http_requests)", 0, compat=compat)


def test_increase_differs_between_2_42_and_2_53() -> None:
    # http_requests 10, 20, ... 110 every 5 m from 0 s; increase(x[100m]) at 50 m.
    # result 100, sampled 3000 s, avg 300 s, threshold 330 s; the window starts 3000 s before the
    # first sample; the zero point is 3000 * 10 / 100 = 300 s before it.
    # 2.42 (zero point first): start = min(3000, 300) = 300 < 330 -> kept: 100 * 3300 / 3000 = 110
    # 2.51..2.55 and 3 (threshold first, prometheus#13725): 3000 >= 330 -> 150, min(150, 300) = 150:
    #   100 * 3150 / 3000 = 105
    df = frame([("http_requests", {}, [(300 * i, 10 + 10 * i) for i in range(11)])])
    expr = "increase(http_requests[100m])"
    for compat in ("2", "2.42", "2.50"):
        assert value(df, expr, 3000, compat=compat) == pytest.approx(110, rel=1e-12), compat
    for compat in ("2.51", "2.53", "2.55", "3"):
        assert value(df, expr, 3000, compat=compat) == pytest.approx(105, rel=1e-12), compat


def test_2_53_keeps_the_left_boundary_sample_that_3_drops() -> None:
    # 0s:100, 30s:100, 60s:130 (from test_left_boundary_sample_counts_in_compat_2_only):
    # increase(x[1m]) at 60 s is 30 with [0, 60] (every 2.x, 2.53 included) and 60 with (0, 60] (3.x)
    df = frame([("x_total", {}, [(0, 100), (30, 100), (60, 130)])])
    assert value(df, "increase(x_total[1m])", 60, compat="2.53") == pytest.approx(30, rel=1e-12)
    assert value(df, "increase(x_total[1m])", 60, compat="3") == pytest.approx(60, rel=1e-12)


# --- issue 11: Prometheus 3 (and 2.54+) arithmetic -------------------------------------------------


def test_kahan_summation() -> None:
    # 1 + 1e100 + 1 - 1e100: plain float64 addition loses both 1s (0); Kahan-Neumaier keeps them (2).
    # sum(): Kahan from 2.54 (prometheus#14074); sum_over_time(): Kahan in 3.x
    series = [("k", {"i": str(i)}, [(0, v)]) for i, v in enumerate([1, 1e100, 1, -1e100])]
    df = frame(series)
    assert value(df, "sum(k)", 0, compat="2") == 0
    assert value(df, "sum(k)", 0, compat="2.53") == 0
    assert value(df, "sum(k)", 0, compat="2.54") == 2
    assert value(df, "sum(k)", 0, compat="3") == 2
    over = frame([("k", {}, [(0, 1), (15, 1e100), (30, 1), (45, -1e100)])])
    assert value(over, "sum_over_time(k[1m])", 45, compat="2") == 0
    assert value(over, "sum_over_time(k[1m])", 45, compat="3") == 2
    assert value(over, "avg_over_time(k[1m])", 45, compat="3") == 0.5


def test_stddev_of_only_nan_or_inf() -> None:
    # Prometheus 2.x seeds the variance of a group with 0, so one NaN (or Inf) alone gives 0;
    # Prometheus 3 (#14941) gives NaN whenever a NaN or infinity is in the group
    for bad in (math.nan, math.inf):
        df = frame([("s", {}, [(0, bad)]), ("t", {}, [(0, 1)])])
        for op in ("stddev", "stdvar"):
            assert value(df, f"{op}(s)", 0, compat="2") == 0
            assert math.isnan(value(df, f"{op}(s)", 0, compat="3"))  # type: ignore[arg-type]
            assert value(df, f"{op}(t)", 0, compat="3") == 0


def test_many_to_one_comparison_needs_group_left_in_3() -> None:
    # x{a=1,b=1}=1 and x{a=1,b=2}=5 both match y{a=1}=3 on(a): many-to-one without group_left.
    # 2.x checks the matching after the comparison filtered (only b=2 survives: no error);
    # Prometheus 3 (#17668) checks before filtering: an error, as for arithmetic.
    df = frame(
        [
            ("x", {"a": "1", "b": "1"}, [(0, 1)]),
            ("x", {"a": "1", "b": "2"}, [(0, 5)]),
            ("y", {"a": "1"}, [(0, 3)]),
        ]
    )
    got = one(df, "x > on(a) y", 0, compat="2")
    assert rows(got) == [{"value": 5, "a": "1"}]  # one-to-one on(a): only 'a' is kept
    with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
        one(df, "x > on(a) y", 0, compat="3")
    for compat in ("2", "3"):  # arithmetic errors in both
        with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
            one(df, "x + on(a) y", 0, compat=compat)
    assert one(df, "x > on(a) group_left y", 0, compat="3")["b"].to_list() == ["2"]
    assert one(df, "x > on(a) group_left y", 0, compat="2")["b"].to_list() == ["2"]


def test_atan2_drops_the_metric_name_in_3() -> None:
    # operators.test: 2.42 "trigy atan2 trigx" -> trigy{} 0.46...; 3.x -> {} 0.46...
    df = frame([("trigy", {}, [(0, 10)]), ("trigx", {}, [(0, 20)])])
    v2 = one(df, "trigy atan2 trigx", 0, compat="2")
    v3 = one(df, "trigy atan2 trigx", 0, compat="3")
    assert v2["metric"].to_list() == ["trigy"]
    assert "metric" not in v3.columns
    assert v3["value"].to_list() == [pytest.approx(math.atan2(10, 20), rel=1e-15)]


def test_numbers_as_durations() -> None:
    # Prometheus >= 2.54 (#9138, stable in 3.0 #15111): x[600] is x[10m], offset 50 is offset 50s,
    # and a duration in an expression is its number of seconds. Before, a unit was required.
    df = frame([("x_total", {}, [(15 * i, 2 * i) for i in range(60)])])
    for compat in ("2.54", "3"):
        assert value(df, "rate(x_total[600])", 800, compat=compat) == value(
            df, "rate(x_total[10m])", 800, compat=compat
        )
        assert value(df, "x_total offset 50", 800, compat=compat) == value(
            df, "x_total offset 50s", 800, compat=compat
        )
        assert value(df, "time() - 10m", 800, compat=compat) == pytest.approx(
            T0.timestamp() + 800 - 600
        )
    for compat in ("2", "2.53"):
        with pytest.raises(PromQLError, match="duration needs a unit"):
            one(df, "rate(x_total[600])", 800, compat=compat)
        with pytest.raises(PromQLError, match="a duration is only valid inside"):
            one(df, "time() - 10m", 800, compat=compat)


# --- issue 11: functions dashboards use ------------------------------------------------------------


def test_topk_bottomk(requests: pl.DataFrame) -> None:
    top = one(requests, "topk(2, http_requests)", 0)
    # an instant query keeps Prometheus's order: largest first; the labels (and name) are kept
    assert top["value"].to_list() == [700, 500]
    assert top["metric"].to_list() == ["http_requests"] * 2
    assert one(requests, "bottomk(1, http_requests)", 0)["value"].to_list() == [100]
    by_job = one(requests, "topk by (job) (1, http_requests)", 0)
    assert sorted(by_job["value"].to_list()) == [300, 700]
    # k from an expression, more than there are, and below 1
    assert one(requests, "topk(scalar(vector(9)), http_requests)", 0).height == 4
    assert one(requests, "topk(0, http_requests)", 0).is_empty()
    with pytest.raises(PromQLError, match="overflows int64"):
        one(requests, "topk(NaN, http_requests)", 0)
    # NaN is never preferred (aggregators.test: 'NaN is sorted away from the top/bottom')
    nan = frame([("n", {"i": "0"}, [(0, math.nan)]), ("n", {"i": "1"}, [(0, 1)])])
    assert one(nan, "topk(1, n)", 0)["i"].to_list() == ["1"]
    assert one(nan, "bottomk(1, n)", 0)["i"].to_list() == ["1"]


def test_topk_is_per_step_in_a_range_query() -> None:
    # a at 0 s: 1, 60 s: 3; b: 2, 2 -> topk(1) is b then a
    df = frame([("g", {"s": "a"}, [(0, 1), (60, 3)]), ("g", {"s": "b"}, [(0, 2), (60, 2)])])
    got = evaluate(df, "topk(1, g)", start=at(0), end=at(60), step=60)
    assert got["s"].to_list() == ["b", "a"]


def test_sort_desc_orders_an_instant_query(requests: pl.DataFrame) -> None:
    assert one(requests, "sort_desc(http_requests)", 0)["value"].to_list() == [700, 500, 300, 100]
    assert one(requests, "sort(http_requests)", 0)["value"].to_list() == [100, 300, 500, 700]


def test_count_values(requests: pl.DataFrame) -> None:
    df = frame(
        [
            ("version", {"job": "api", "instance": "0"}, [(0, 6)]),
            ("version", {"job": "api", "instance": "1"}, [(0, 6)]),
            ("version", {"job": "app", "instance": "0"}, [(0, 0.1)]),
            ("version", {"job": "app", "instance": "1"}, [(0, 1e21)]),
        ]
    )
    got = {r["version"]: r["value"] for r in rows(one(df, 'count_values("version", version)', 0))}
    # values as Go's strconv.FormatFloat(v, 'f', -1, 64) writes them
    assert got == {"6": 2, "0.1": 1, "1000000000000000000000": 1}
    by_job = rows(one(df, 'count_values by (job) ((("v")), version)', 0))
    assert {(r["job"], r["v"], r["value"]) for r in by_job} == {
        ("api", "6", 2),
        ("app", "0.1", 1),
        ("app", "1000000000000000000000", 1),
    }
    # the new label overwrites a grouping label of the same name, merging the groups
    over = rows(one(df, 'count_values without (instance) ("job", version)', 0))
    assert {(r["job"], r["value"]) for r in over} == {("6", 2), ("0.1", 1), ("1000000000000000000000", 1)}  # fmt: skip
    with pytest.raises(PromQLError, match="invalid label name"):
        one(df, 'count_values("not-a-label", version)', 0)
    with pytest.raises(PromQLError, match="expects a string"):
        one(df, "count_values(1, version)", 0)


def test_timestamp() -> None:
    # of a selector: the time of the sample it picked; of anything else: the evaluation time
    df = frame([("m", {"a": "x"}, [(0, 1), (30, 2)])])
    assert value(df, "timestamp(m)", 45) == pytest.approx(T0.timestamp() + 30)
    assert value(df, "timestamp(((m)))", 29) == pytest.approx(T0.timestamp())
    assert value(df, "timestamp(m offset 20s)", 45) == pytest.approx(T0.timestamp())
    assert value(df, "timestamp(m + 1)", 45) == pytest.approx(T0.timestamp() + 45)
    assert "metric" not in one(df, "timestamp(m)", 45).columns


def test_deriv_and_predict_linear() -> None:
    # samples 0 s: 0, 60 s: 30, 120 s: 60 (0.5/s, exactly linear): deriv = 0.5;
    # predict_linear(x[5m], 600) at 120 s = 60 + 0.5 * 600 = 360
    df = frame([("x", {}, [(0, 0), (60, 30), (120, 60)])])
    assert value(df, "deriv(x[5m])", 120) == pytest.approx(0.5, rel=1e-12)
    assert value(df, "predict_linear(x[5m], 600)", 120) == pytest.approx(360, rel=1e-12)
    # at 150 s the intercept is taken at 150 s: 75 + 0.5 * 600 = 375
    assert value(df, "predict_linear(x[5m], 600)", 150) == pytest.approx(375, rel=1e-12)
    # least squares through 0 s: 0, 60 s: 60, 120 s: 0 -> slope 0; a constant series -> 0
    tent = frame([("t", {}, [(0, 0), (60, 60), (120, 0)])])
    assert value(tent, "deriv(t[5m])", 120) == 0
    assert value(frame([("c", {}, [(0, 7), (60, 7)])]), "deriv(c[5m])", 60) == 0
    # one sample in the window: no result
    assert value(df, "deriv(x[30s])", 120) is None


def test_result_type() -> None:
    assert result_type("1 + 2") == "scalar"
    assert result_type("scalar(x) * time()") == "scalar"
    assert result_type("x + 1") == "vector"
    assert result_type("sum(rate(x[5m]))") == "vector"
    assert result_type("x[5m]") == "matrix"
    assert result_type("max_over_time(x[5m])[1h:]") == "matrix"


def test_at_modifier() -> None:
    # '@ t' reads a selector (or subquery) at t for every step; start()/end(): the query's bounds
    df = frame([("m", {}, [(60 * i, i) for i in range(11)])])
    t0 = T0.timestamp()
    got = evaluate(df, f"m @ {t0 + 120}", start=at(300), end=at(600), step=60)
    assert got["value"].to_list() == [2] * 6
    assert evaluate(df, "m @ start()", start=at(300), end=at(600), step=60)["value"].unique().to_list() == [5]  # fmt: skip
    assert evaluate(df, "m @ end() offset 2m", start=at(300), end=at(600), step=60)["value"].unique().to_list() == [8]  # fmt: skip
    # range functions and subqueries: the window ends at the '@' time
    assert value(df, f"increase(m[2m] @ {t0 + 240})", 600, compat="2") == pytest.approx(2)
    assert value(df, f"max_over_time(m[5m:1m] @ {t0 + 240})", 600) == 4
    # predict_linear keeps the evaluation time as its reference (functions.test)
    assert value(df, f"predict_linear(m[10m] @ {t0 + 600}, 0)", 300) == pytest.approx(5)
