"""Source-independent analyses on small frames whose answers are known by construction."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from kit.analyses.latency import latency_modes
from kit.stats import latency_quantiles
from kit.timeutil import time_bins


def test_latency_quantiles_nearest_rank_and_nulls() -> None:
    # 1..100 ms: p50 is the 50th value, p90 the 90th, p99 the 99th ("higher" nearest rank)
    df = pl.DataFrame(
        {"duration_s": [i / 1000 for i in range(1, 101)] + [None], "qtype": ["A"] * 101}
    )
    row = latency_quantiles(df).row(0, named=True)
    assert (row["n"], row["n_null"]) == (100, 1)
    # rank (n-1)q rounded up: p50 -> index 50 (0.051), p90 -> 90 (0.091), p99 -> 99 (0.100)
    assert row["p50_s"] == pytest.approx(0.051)
    assert row["p90_s"] == pytest.approx(0.091)
    assert row["p99_s"] == pytest.approx(0.100)
    assert row["max_s"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="outside"):
        latency_quantiles(df, quantiles=(0,))
    with pytest.raises(KeyError, match="latency_s"):
        latency_quantiles(df, value="latency_s")


def test_time_bins_fill_silence_with_zero() -> None:
    t0 = datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC)
    ts = [t0, t0 + timedelta(seconds=20), t0 + timedelta(minutes=3)]
    df = pl.DataFrame({"ts": ts, "upstream": ["a", "a", "b"]}).with_columns(
        pl.col("ts").dt.cast_time_unit("us")
    )
    out = time_bins(df, by=["upstream"])
    # 4 minutes x 2 upstreams, silence present as 0
    assert out.height == 8
    a = out.filter(pl.col("upstream") == "a")["count"].to_list()
    b = out.filter(pl.col("upstream") == "b")["count"].to_list()
    assert a == [2, 0, 0, 0] and b == [0, 0, 0, 1]
    assert out["count"].sum() == df.height


def test_latency_modes_finds_the_syn_ladder() -> None:
    rng = random.Random(7)
    fast = [rng.uniform(0.0005, 0.02) for _ in range(2000)]
    # answers that waited for 1, 2 or 3 lost SYNs: 1 s, 3 s, 7 s plus an RTT
    ladder = (
        [1 + rng.uniform(0.001, 0.03) for _ in range(200)]
        + [3 + rng.uniform(0.001, 0.03) for _ in range(100)]
        + [7 + rng.uniform(0.001, 0.03) for _ in range(50)]
    )
    noise = [rng.uniform(0.3, 12) for _ in range(40)]
    modes = latency_modes(pl.DataFrame({"latency_s": fast + ladder + noise}), value="latency_s")
    assert modes["mode_s"].round(0).to_list() == [1.0, 3.0, 7.0]
    counts = modes["count"].to_list()
    assert counts[0] >= 200 and counts[1] >= 100 and counts[2] >= 50
    assert all(
        lo <= m <= hi for lo, m, hi in modes.select("lower_s", "mode_s", "upper_s").iter_rows()
    )


def test_latency_modes_none_when_healthy_or_flat() -> None:
    rng = random.Random(3)
    healthy = pl.DataFrame({"duration_s": [rng.uniform(0.0005, 0.05) for _ in range(5000)]})
    assert latency_modes(healthy).is_empty()
    # slow but spread evenly on a log scale: no bin stands out enough
    flat = pl.DataFrame({"duration_s": [10 ** rng.uniform(-0.5, 1.2) for _ in range(60)]})
    assert latency_modes(flat, min_count=10).is_empty()


def test_time_bins_untimed_rows_and_null_groups() -> None:
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    untimed = pl.DataFrame(
        {"ts": [None, None], "upstream": ["a", None]},
        schema={"ts": pl.Datetime("us", "UTC"), "upstream": pl.String},
    )
    assert time_bins(untimed, by=["upstream"]).is_empty()
    # a null group (e.g. errors with no upstream) is counted as its own group, not as zero
    df = pl.DataFrame(
        {"ts": [t0, t0, t0 + timedelta(minutes=1), None], "upstream": [None, "a", None, None]},
        schema={"ts": pl.Datetime("us", "UTC"), "upstream": pl.String},
    )
    out = time_bins(df, by=["upstream"])
    assert out.filter(pl.col("upstream").is_null())["count"].to_list() == [1, 1]
    assert out.filter(pl.col("upstream") == "a")["count"].to_list() == [1, 0]
    assert out["count"].sum() == 3  # the untimed row is left out


def test_match_timers_nearest_on_log_scale() -> None:
    from kit.analyses.latency import match_timers

    timers = pl.DataFrame({"name": ["syn1", "syn2", "syn3"], "timer_s": [1.0, 3.0, 7.0]})
    modes = pl.DataFrame({"mode_s": [1.02, 2.0, 7.9, 10.0]})
    got = match_timers(modes, timers, tolerance=0.15)
    # 2.0: log distance to 1 is ln 2 = 0.69, to 3 is ln 1.5 = 0.41 -> 3 s, ratio 0.67: no match
    # 7.9 -> 7 s, ratio 1.13: a match; 10 -> 7 s, ratio 1.43: no match
    assert got["name"].to_list() == ["syn1", "syn2", "syn3", "syn3"]
    assert got["matches"].to_list() == [True, False, True, False]
    assert got["ratio"].round(3).to_list() == [1.02, 0.667, 1.129, 1.429]
    empty = match_timers(modes.clear(), timers)
    assert empty.columns == ["mode_s", "name", "timer_s", "ratio", "matches"] and empty.is_empty()
    with pytest.raises(KeyError, match="timer_s"):
        match_timers(modes, timers.rename({"timer_s": "t"}))


def test_outcomes_per_group_by_hand() -> None:
    """Every count and quantile of each group, null keys and answerless groups included."""
    from kit.analyses.latency import outcomes

    rng = random.Random(7)
    rows = []
    for _ in range(600):
        answered = rng.random() < 0.8
        rows.append(
            {
                "capture": rng.choice(["node-b", "node-a", None]),
                "phase": rng.choice(["before", "during", None]),
                "answered": answered,
                "censored": (not answered) and rng.random() < 0.3,
                "latency_s": rng.random() * rng.choice([0.002, 0.02, 2.0, 8.0])
                if answered
                else None,
                "retransmissions": rng.choice([0, 0, 1, 2]),
                "tc": rng.choice([True, False, None]),
            }
        )
    # a group with no answer at all: null quantiles, null slow_share
    rows += [{**rows[0], "capture": "node-c", "answered": False, "latency_s": None}] * 3
    df = pl.DataFrame(rows, schema_overrides={"retransmissions": pl.UInt32})
    got = outcomes(df, by=["capture", "phase"], slow_s=1.0)
    assert got.columns == [
        "capture", "phase", "queries", "answered", "slow", "unanswered", "censored",
        "retransmitted", "truncated", "p50_s", "p90_s", "p99_s", "max_s", "slow_share",
    ]  # fmt: skip
    keys = sorted(
        {(r["capture"], r["phase"]) for r in rows},
        key=lambda k: [(x is not None, x or "") for x in k],
    )
    assert got.select("capture", "phase").rows() == keys  # sorted, nulls first
    for out in got.iter_rows(named=True):
        g = [r for r in rows if (r["capture"], r["phase"]) == (out["capture"], out["phase"])]
        lat = sorted(r["latency_s"] for r in g if r["latency_s"] is not None)
        answered = sum(r["answered"] for r in g)
        slow = sum(1 for r in g if r["answered"] and r["latency_s"] >= 1.0)
        want = {
            "queries": len(g),
            "answered": answered,
            "slow": slow,
            "unanswered": sum(1 for r in g if not r["answered"] and not r["censored"]),
            "censored": sum(1 for r in g if not r["answered"] and r["censored"]),
            "retransmitted": sum(1 for r in g if r["retransmissions"] > 0),
            "truncated": sum(1 for r in g if r["tc"]),
            # nearest rank: index (n - 1) q rounded half up
            "p50_s": lat[int(0.5 * (len(lat) - 1) + 0.5)] if lat else None,
            "p90_s": lat[int(0.9 * (len(lat) - 1) + 0.5)] if lat else None,
            "p99_s": lat[int(0.99 * (len(lat) - 1) + 0.5)] if lat else None,
            "max_s": lat[-1] if lat else None,
            "slow_share": slow / answered if answered else None,
        }
        assert {k: out[k] for k in want} == want, (out["capture"], out["phase"])
    assert got.filter(pl.col("capture") == "node-c")["p50_s"].to_list() == [None]
    assert got.schema["queries"] == pl.UInt32 and got.schema["p50_s"] == pl.Float64
    # every query in exactly one group, whatever the grouping
    for by in (["capture"], ["phase"], ["capture", "phase"]):
        assert outcomes(df, by=by)["queries"].sum() == len(rows)
    assert outcomes(df.clear(), by=["capture", "phase"]).height == 0
