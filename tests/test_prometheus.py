"""kit.read_metrics on Prometheus HTTP API JSON, text exposition and OpenMetrics; CoreDNS name mapping.

Expected values come from the files themselves, read by independent means (``json.load``, ``grep``-
style line counts, values copied from a named line), or are computed by hand in comments.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFormatError, KitWarning
from kit.prometheus import METRICS_BASE_SCHEMA, read_metrics
from kit.schema import check_schema

UTC_US = pl.Datetime("us", "UTC")


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _assert_contract(df: pl.DataFrame) -> None:
    """The frame contract shared with kit.promql: base columns, then sorted String labels."""
    check_schema(df, METRICS_BASE_SCHEMA)
    labels = df.columns[4:]
    assert labels == sorted(labels)
    assert all(df.schema[c] == pl.String for c in labels)
    assert df["ts"].null_count() == 0
    assert df["source"].null_count() == 0
    for c in labels:  # empty label values are stored as null
        assert (df[c] == "").sum() == 0, c


# ---------------------------------------------------------------------------------------------
# Prometheus HTTP API JSON


def test_public_name_is_lazy_export() -> None:
    assert kit.read_metrics is read_metrics


@pytest.mark.parametrize(
    "name",
    [
        "grafana_range_simple.result.json",
        "grafana_range_missing.result.json",
        "grafana_range_nan.result.json",
        "grafana_range_infinity.result.json",
        "promapiclient_up_matrix_result_201907281200.json",
    ],
)
def test_api_json_fixtures_match_json_load(shared_fixtures: Path, name: str) -> None:
    path = shared_fixtures / "metrics" / name
    doc = json.loads(path.read_text())
    result = doc["data"]["result"] if isinstance(doc, dict) else doc
    # Independent expectation: every [t, "v"] pair of every series, from json.load.
    want = []
    for s in result:
        labels = dict(s["metric"])
        metric = labels.pop("__name__", None)
        for t, v in s["values"]:
            want.append((round(t * 1000), metric, float(v), tuple(sorted(labels.items()))))
    df = read_metrics(path)
    _assert_contract(df)
    assert df.height == len(want)
    assert set(df["source"]) == {name}
    label_cols = df.columns[4:]
    got = []
    for row in df.iter_rows(named=True):
        labels = tuple(sorted((c, row[c]) for c in label_cols if row[c] is not None))
        got.append((round(row["ts"].timestamp() * 1000), row["metric"], row["value"], labels))

    def key(x: tuple) -> tuple:  # NaN != NaN: compare its repr
        return (x[0], x[1] or "", repr(x[2]), x[3])

    assert sorted(map(key, got)) == sorted(map(key, want))


def test_api_json_simple_values_and_fractional_timestamps(shared_fixtures: Path) -> None:
    df = read_metrics(shared_fixtures / "metrics" / "grafana_range_simple.result.json")
    # Series code="400" has [1641889529.123, "54"] and [1641889532.123, "76"] (lines 27-28).
    s400 = df.filter(pl.col("code") == "400")
    assert s400["value"].to_list() == [54.0, 76.0]
    assert s400["ts"].to_list() == [_dt(1641889529.123), _dt(1641889532.123)]
    assert s400["ts"][0].microsecond == 123_000
    assert df["metric"].unique().to_list() == ["prometheus_http_requests_total"]
    assert df.columns == ["ts", "metric", "value", "source", "code", "handler", "job"]


def test_api_json_nan_inf_and_unnamed_series(shared_fixtures: Path) -> None:
    nan = read_metrics(shared_fixtures / "metrics" / "grafana_range_nan.result.json")
    assert nan.height == 3 and all(math.isnan(v) for v in nan["value"])
    assert nan["metric"].null_count() == 3  # no __name__ in the series
    inf = read_metrics(shared_fixtures / "metrics" / "grafana_range_infinity.result.json")
    assert inf["value"].to_list() == [math.inf] * 3
    assert inf.columns == list(METRICS_BASE_SCHEMA)  # metric {} has no labels at all


def test_api_json_without_envelope_real_production_file(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "promapiclient_up_matrix_result_201907281200.json"
    text = path.read_text()
    df = read_metrics(path)
    # Independent count: every point is written as [<ts>, "<value>"] in the raw text.
    assert df.height == len(re.findall(r'\[\d+(?:\.\d+)?, "[^"]*"\]', text)) == 6839
    assert df.select(pl.struct(df.columns[4:]).n_unique()).item() == 9  # 9 series (PROVENANCE)
    # millisecond fractions as written in the text (e.g. 1564308009.804 -> 804000 us)
    fractions = {int((m + "000")[:3]) * 1000 for m in re.findall(r'\[\d+\.?(\d*), "', text)}
    assert set(df["ts"].dt.microsecond()) == fractions
    assert 804_000 in fractions
    # Rows are ordered by series then time.
    assert df.group_by("instance").agg(pl.col("ts").is_sorted().alias("s"))["s"].all()


def test_api_vector_special_values_labels_and_collisions(data_dir: Path) -> None:
    with pytest.warns(KitWarning, match=r"renamed: \{'source': 'label_source', 'ts': 'label_ts'\}"):
        df = read_metrics(data_dir / "metrics" / "api_vector_special_values.json")
    _assert_contract(df)
    assert df.columns == [
        "ts",
        "metric",
        "value",
        "source",
        "instance",
        "label_source",
        "label_ts",
        "le",
        "server",
        "zone",
    ]  # view="" is absent: an empty label is no label
    vals = df["value"].to_list()
    assert math.isnan(vals[0]) and vals[1] == math.inf and vals[2] == -math.inf
    assert vals[3] == 1e-07 and vals[4] == 0.000123
    assert df["le"].to_list()[:2] == ["8.192", "+Inf"]
    assert df["source"].unique().to_list() == ["api_vector_special_values.json"]
    # hostile label value kept byte for byte; series with no name has metric null
    odd = df.filter(pl.col("metric").is_null())
    assert odd["instance"].to_list() == ['a"b<c> d']
    assert odd["ts"].to_list() == [_dt(1700000000.050)]
    assert df.filter(pl.col("metric") == "x")["label_source"].drop_nulls().to_list() == ["kubelet"]


def test_api_scalar(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "api_scalar.json")
    assert df.rows() == [(_dt(1700000000), None, 42.5, "api_scalar.json")]


def test_api_error_envelope_raises_with_prometheus_message(data_dir: Path) -> None:
    with pytest.raises(
        InputFormatError,
        match=r"api_error\.json: the Prometheus API answered with an error: bad_data: invalid parameter",
    ):
        read_metrics(data_dir / "metrics" / "api_error.json")


def test_api_bad_value_strict_and_lenient(data_dir: Path) -> None:
    path = data_dir / "metrics" / "api_matrix_bad_value.json"
    with pytest.raises(
        InputFormatError, match=r"data\.result\[0\]\.values\[1\]: not a number: 'one'"
    ):
        read_metrics(path)
    with pytest.warns(
        KitWarning,
        match=r"2 malformed sample\(s\) skipped .* first at data\.result\[0\]\.values\[1\]",
    ):
        df = read_metrics(path, strict=False)
    # 5 points in the file, "one" and "1_0" (Go's ParseFloat rejects underscores) are rejected
    assert df.height == 3
    assert df["job"].to_list() == ["a", "a", "b"]


def test_api_truncated_json_names_line(data_dir: Path) -> None:
    # line 2 ends inside the string '"' that was cut off: the decoder stops at that newline
    with pytest.raises(InputFormatError, match=r"api_matrix_truncated\.json:2: invalid JSON") as ei:
        read_metrics(data_dir / "metrics" / "api_matrix_truncated.json")
    assert ei.value.line == 2


def test_several_files_and_duplicates_across_files(shared_fixtures: Path, tmp_path: Path) -> None:
    src = shared_fixtures / "metrics" / "grafana_range_simple.result.json"
    copy = tmp_path / "copy.json"
    copy.write_bytes(src.read_bytes())
    # same 5 samples twice: Prometheus keeps the first; identical values are not a conflict
    with pytest.warns(KitWarning, match=r"5 duplicate sample\(s\) .* dropped, keeping the first"):
        df = read_metrics([src, copy])
    assert df.height == 5 and set(df["source"]) == {src.name}
    # a conflicting value for the same series and time raises (Prometheus rejects it)
    doc = json.loads(src.read_text())
    doc["data"]["result"][0]["values"][1][1] = "33"  # was "32"
    copy.write_text(json.dumps(doc))
    with pytest.raises(
        InputFormatError,
        match=r"copy\.json: duplicate sample for timestamp 2022-01-11T08:25:31\.123000\+00:00 with a different value \(32\.0 first",
    ):
        read_metrics([src, copy])
    with pytest.warns(KitWarning, match=r"1 duplicated \(series, ts\) had different values"):
        df = read_metrics([src, copy], strict=False)
    assert df.filter(pl.col("code") == "200")["value"].to_list() == [21.0, 32.0, 43.0]


def test_unknown_fmt_is_value_error(data_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"fmt must be 'auto' or one of"):
        read_metrics(data_dir / "metrics" / "api_scalar.json", fmt="csv")  # type: ignore[arg-type]


def test_forced_fmt_mismatch_is_input_format_error(data_dir: Path) -> None:
    with pytest.raises(
        InputFormatError, match=r"api_scalar\.json:1: malformed text exposition 0\.0\.4 sample"
    ):
        read_metrics(data_dir / "metrics" / "api_scalar.json", fmt="text")


def test_no_warnings_on_clean_fixture(shared_fixtures: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_metrics(shared_fixtures / "metrics" / "grafana_range_missing.result.json")
