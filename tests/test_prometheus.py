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
from kit.schema import check_schema
from kit.sources.metrics.prometheus import (
    METRICS_BASE_SCHEMA,
    canonical_metric,
    normalize_metric_names,
    read_metrics,
)

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
    # the "one" is on line 2 (one series per line); the JSON path says exactly where
    with pytest.raises(InputFormatError) as ei:
        read_metrics(path)
    assert ei.value.line == 2
    assert str(ei.value).startswith(f"{path}:2: data.result[0].values[1]: not a number: 'one'")
    with pytest.raises(
        InputFormatError, match=r"data\.result\[0\]\.values\[1\]: not a number: 'one'"
    ):
        read_metrics(path)
    with pytest.warns(
        KitWarning,
        match=r"2 malformed sample\(s\) skipped .* first at data\.result\[0\]\.values\[1\], line 2 ",
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
    # same 5 samples twice: Prometheus keeps the first and counts the rest (not an error)
    with pytest.warns(
        KitWarning,
        match=r"5 duplicate sample\(s\) .* dropped, keeping the first as Prometheus does; 0 duplicated \(series, ts\) had different values",
    ):
        df = read_metrics([src, copy])
    assert df.height == 5 and set(df["source"]) == {src.name}
    # a conflicting value for the same series and time: still the first one wins, and the
    # warning says a value differed and where the first dropped sample is
    doc = json.loads(src.read_text())
    doc["data"]["result"][0]["values"][1][1] = "33"  # was "32"
    copy.write_text(json.dumps(doc))
    with pytest.warns(
        KitWarning,
        match=r"; 1 duplicated \(series, ts\) had different values; first dropped one at .*copy\.json series #0: prometheus_http_requests_total\{code=\"200\"",
    ):
        df = read_metrics([src, copy], strict=True)
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


# ---------------------------------------------------------------------------------------------
# Text exposition 0.0.4

SCRAPE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
# One sample line of 0.0.4 text, as simply as possible: series text, value, optional timestamp.
# Good enough for the fixtures below (no blanks inside their label values).
_SIMPLE_LINE = re.compile(r"^(\S+?)(\{\S*\})?\s+(\S+)(?:\s+(\S+))?$")


def _simple_parse(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SIMPLE_LINE.match(line)
        assert m, line
        out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


@pytest.mark.parametrize(
    "name",
    [
        "datadog_coredns_v1.1.0_metrics.prom",
        "netdata_coredns_v1.6.9_some_load.prom",
        "netdata_coredns_v1.7.0_some_load.prom",
        "netdata_coredns_no_version_no_load.prom",
    ],
)
def test_text_fixtures_every_sample_line_read(shared_fixtures: Path, name: str) -> None:
    path = shared_fixtures / "metrics" / name
    want = _simple_parse(path)
    df = read_metrics(path, scrape_time=SCRAPE)
    _assert_contract(df)
    assert df.height == len(want)
    assert df["ts"].unique().to_list() == [SCRAPE]  # no timestamps in a scrape
    # Same multiset of (metric, value); NaN-free fixtures, so plain equality works.
    assert sorted(zip(df["metric"], df["value"], strict=True)) == sorted((m, v) for m, _, v in want)
    # Label values: every non-empty label pair written in the file shows up on its metric.
    label_cols = df.columns[4:]
    got_pairs = {
        (r["metric"], c, r[c]) for r in df.iter_rows(named=True) for c in label_cols if r[c]
    }
    want_pairs = {
        (m, k, v) for m, lab, _ in want for k, v in re.findall(r'(\w+)="([^"]*)"', lab) if v
    }
    assert got_pairs == want_pairs


def test_text_datadog_exponent_values_from_named_lines(shared_fixtures: Path) -> None:
    df = read_metrics(shared_fixtures / "metrics" / "datadog_coredns_v1.1.0_metrics.prom")
    # line 10: coredns_cache_hits_total{type="denial"} 8.051403e+06
    hits = df.filter(
        (pl.col("metric") == "coredns_cache_hits_total") & (pl.col("type") == "denial")
    )
    assert hits["value"].to_list() == [8_051_403.0]
    # line 43/44: le="8.192" and le="+Inf" of the request duration histogram, both 8.219674e+06
    b = df.filter(pl.col("metric") == "coredns_dns_request_duration_seconds_bucket")
    assert b["le"].to_list()[-2:] == ["8.192", "+Inf"]
    assert b["value"].to_list()[-2:] == [8_219_674.0, 8_219_674.0]
    assert b["zone"].unique().to_list() == ["."]
    # CoreDNS 1.1.0 has no server label (formats.md 4.2) and the old proxy plugin's labels
    assert "server" not in df.columns
    proxy = df.filter(pl.col("metric").str.starts_with("coredns_proxy_"))
    assert proxy.height > 0 and proxy["proxy_proto"].null_count() == 0


def test_text_netdata_empty_server_label_is_null(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "netdata_coredns_v1.7.0_some_load.prom"
    df = read_metrics(path, scrape_time="2024-05-01T12:00:00Z")
    lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
    n_empty = sum('server=""' in x for x in lines)
    n_absent = sum("server=" not in x for x in lines)  # build_info, panics_total
    assert n_empty == 4 and n_absent == 2  # grep -c 'server=""' gives 4
    assert df["server"].null_count() == n_empty + n_absent


def test_text_default_scrape_time_is_mtime(data_dir: Path, tmp_path: Path) -> None:
    p = tmp_path / "scrape.prom"
    p.write_text("coredns_panics_total 3\n")
    mtime = 1_650_000_000.123456
    import os

    os.utime(p, (mtime, mtime))
    df = read_metrics(p)
    assert df["ts"].to_list() == [_dt(1_650_000_000.123)]  # rounded to the millisecond


def test_text_escapes_exponents_specials(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "text_escapes_exponents.prom", scrape_time=SCRAPE)
    _assert_contract(df)
    assert df.columns == [
        "ts",
        "metric",
        "value",
        "source",
        "case",
        "job",
        "le",
        "nl",
        "path",
        "quote",
    ]
    t = df.filter(pl.col("metric") == "dns_test")
    # line 3: path="C:\\dir\\" -> C:\dir\ ; quote="say \"hi\"" -> say "hi" ; \n -> newline
    assert t.row(0, named=True) | {"source": None} == {
        "ts": SCRAPE,
        "metric": "dns_test",
        "value": 1500.0,
        "source": None,
        "case": None,
        "job": None,
        "le": None,
        "nl": "line1\nline2",
        "path": "C:\\dir\\",
        "quote": 'say "hi"',
    }
    # line 4: blanks around '=', trailing comma, -2.5E-3, timestamp 1700000000123 ms
    assert t.row(1) == (
        _dt(1700000000.123),
        "dns_test",
        -0.0025,
        "text_escapes_exponents.prom",
        None,
        None,
        None,
        None,
        "x",
        "y",
    )
    g = dict(
        zip(
            df.filter(pl.col("metric") == "dns_gauge")["case"],
            df.filter(pl.col("metric") == "dns_gauge")["value"],
            strict=True,
        )
    )
    assert math.isnan(g[None]) and math.isnan(g["Nan"])
    assert g["pinf"] == math.inf and g["ninf"] == -math.inf
    assert g["big"] == 191_019_225_200.0
    assert g["empty"] == 7.0  # view="" dropped: no 'view' column at all
    # le kept as written; last line has no final newline and is still read
    h = df.filter(pl.col("metric") == "dns_hist_bucket")
    assert h.select("job", "le", "value").rows() == [
        ("a", "1", 3.0),
        ("a", "+Inf", 4.0),
        ("b", "1.0", 5.0),
        ("b", "+Inf", 6.0),
    ]
    assert not (data_dir / "metrics" / "text_escapes_exponents.prom").read_bytes().endswith(b"\n")


def test_text_bad_lines_strict_names_line(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_bad_lines.prom"
    with pytest.raises(InputFormatError) as ei:
        read_metrics(path, scrape_time=SCRAPE)
    # line 4 is 'coredns_x{a="3" 4' (no closing brace)
    assert ei.value.line == 4
    assert str(ei.value).startswith(f"{path}:4: malformed text exposition 0.0.4 sample: ")
    assert ei.value.excerpt == 'coredns_x{a="3" 4'


def test_text_bad_lines_lenient_counts(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_bad_lines.prom"
    with pytest.warns(
        KitWarning, match=r"2 malformed line\(s\) skipped \(strict=False\); first at line 4 "
    ):
        df = read_metrics(path, scrape_time=SCRAPE, strict=False)
    # lines 2, 3, 6 are good; 4 (no brace) and 5 ('five') are rejected: 3 + 2 = 5 sample lines
    assert df["a"].to_list() == ["1", "2", "5"]
    assert df["value"].to_list() == [2.0, 3.0, 6.0]


def test_text_float_timestamp_hints_openmetrics(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_float_timestamp.prom"
    with pytest.raises(
        InputFormatError,
        match=r"text_float_timestamp\.prom:2: .*not integer milliseconds .*fmt='openmetrics'",
    ):
        read_metrics(path)
    df = read_metrics(path, fmt="openmetrics")
    assert df["ts"].to_list() == [_dt(1700000000.5)]


def test_text_duplicate_series_without_timestamps(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_duplicate_no_timestamps.prom"
    # lines 2 and 3 are the same series, no timestamps: both at the scrape time
    with pytest.warns(
        KitWarning,
        match=r"1 duplicate sample\(s\) .*; 1 duplicated \(series, ts\) had different values; first dropped one at .*text_duplicate_no_timestamps\.prom:3: coredns_panics_total\{\} at 2024-05-01T12:00:00\+00:00\. Concatenated scrapes need timestamps",
    ):
        df = read_metrics(path, scrape_time=SCRAPE)
    assert df["value"].to_list() == [1.0]  # the first one kept, as Prometheus does


def test_histogram_without_inf_warns_naming_series(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_histogram_no_inf.prom"
    with pytest.warns(
        KitWarning,
        match=r'1 histogram\(s\) have no le="\+Inf" bucket.*: x_bucket\{server="dns://:53"\}$',
    ) as rec:
        df = read_metrics(path, scrape_time=SCRAPE)
    assert len([w for w in rec if issubclass(w.category, KitWarning)]) == 1  # y has +Inf
    assert df.height == 6  # kept, not dropped


@pytest.mark.parametrize("name", ["empty.prom", "text_only_metadata.prom"])
def test_empty_export_gives_empty_frame(data_dir: Path, name: str) -> None:
    df = read_metrics(data_dir / "metrics" / name)
    assert df.is_empty() and df.schema == METRICS_BASE_SCHEMA


def test_not_a_metrics_file(data_dir: Path) -> None:
    with pytest.raises(
        InputFormatError,
        match=r"not_metrics\.log:1: not a metrics export the kit recognises: '\[INFO\]",
    ):
        read_metrics(data_dir / "metrics" / "not_metrics.log")


def test_gzip_and_directory_sources(shared_fixtures: Path, tmp_path: Path) -> None:
    import gzip

    src = shared_fixtures / "metrics" / "netdata_coredns_v1.7.0_some_load.prom"
    (tmp_path / "a.prom.gz").write_bytes(gzip.compress(src.read_bytes()))
    df = read_metrics(tmp_path, scrape_time=SCRAPE)
    assert df.height == len(_simple_parse(src)) and set(df["source"]) == {"a.prom.gz"}


def test_naive_scrape_time_rejected(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        read_metrics(data_dir / "metrics" / "empty.prom", scrape_time=datetime(2024, 1, 1))


# ---------------------------------------------------------------------------------------------
# OpenMetrics, checked against promtool's own parser (backfill + dump)


def _promtool_dump(
    promtool: str, om: Path, tmp: Path
) -> list[tuple[str | None, dict[str, str], float, int]]:
    import subprocess

    db = tmp / "db"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(db)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (db / "wal").mkdir(exist_ok=True)  # `tsdb dump` insists on a WAL directory
    out = subprocess.run(
        [promtool, "tsdb", "dump", str(db)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    rows = []
    for line in out.splitlines():
        m = re.fullmatch(r"\{(.*)\} (\S+) (-?\d+)", line)
        assert m, line
        labels = {
            k: json.loads(f'"{v}"') for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1))
        }
        name = labels.pop("__name__", None)
        rows.append((name, labels, float(m.group(2)), int(m.group(3))))
    return rows


def test_openmetrics_history_matches_promtool(data_dir: Path, tmp_path: Path) -> None:
    from conftest import require_tool

    promtool = require_tool("promtool", "prometheus")
    path = data_dir / "metrics" / "om_history.om"
    want = _promtool_dump(promtool, path, tmp_path)
    df = read_metrics(path)  # sniffed as OpenMetrics from '# EOF'
    _assert_contract(df)
    label_cols = df.columns[4:]
    got = [
        (
            r["metric"],
            {c: r[c] for c in label_cols if r[c] is not None},
            r["value"],
            round(r["ts"].timestamp() * 1000),
        )
        for r in df.iter_rows(named=True)
    ]

    def key(x: tuple) -> tuple:
        return (x[0] or "", sorted(x[1].items()), x[3], repr(x[2]))

    assert len(got) == len(want) == 42
    assert sorted(map(key, got)) == sorted(map(key, want))
    # the escaped label value, resolved
    note = df.filter(pl.col("metric") == "coredns_forward_requests_total")["note"].unique()
    assert note.to_list() == ['a "quoted" \\ value\nnext']


def test_openmetrics_concatenated_scrapes_with_eof_each(data_dir: Path, tmp_path: Path) -> None:
    # promtool only takes one '# EOF'; kit also reads scrapes concatenated with one EOF each.
    text = (data_dir / "metrics" / "om_history.om").read_text()
    body = text.replace("# EOF\n", "")
    lines = body.splitlines()
    half = len(lines) // 2
    p = tmp_path / "two.om"
    p.write_text("\n".join(lines[:half]) + "\n# EOF\n" + "\n".join(lines[half:]) + "\n# EOF\n")
    assert read_metrics(p).equals(
        read_metrics(data_dir / "metrics" / "om_history.om").with_columns(
            pl.lit("two.om").alias("source")
        )
    )


# ---------------------------------------------------------------------------------------------
# CoreDNS metric names across versions


def _names(df: pl.DataFrame) -> set[str]:
    return set(df["metric"].drop_nulls())


def test_normalize_1_6_9_scrape_gets_1_7_0_names(shared_fixtures: Path) -> None:
    """Two real scrapes from netdata: 1.6.9 (old names) and 1.7.0 (new names)."""
    old = read_metrics(shared_fixtures / "metrics" / "netdata_coredns_v1.6.9_some_load.prom")
    new = read_metrics(shared_fixtures / "metrics" / "netdata_coredns_v1.7.0_some_load.prom")
    assert not _names(new) <= _names(old)  # before: the 1.7.0 names are missing from 1.6.9
    norm = normalize_metric_names(old)
    assert _names(new) <= _names(norm)  # after: every 1.7.0 name exists
    assert "coredns_dns_request_count_total" not in _names(norm)
    # request_type_count_total stays (it is the 'type' label of requests_total since 1.7.0)
    assert "coredns_dns_request_type_count_total" in _names(norm)
    # nothing else changes: same values, same labels, same row order
    assert norm.drop("metric").equals(old.drop("metric"))
    changed = dict(
        old.select("metric", norm["metric"].alias("new"))
        .unique()
        .filter(pl.col("metric") != pl.col("new"))
        .iter_rows()
    )
    assert changed == {
        "coredns_panic_count_total": "coredns_panics_total",
        "coredns_dns_request_count_total": "coredns_dns_requests_total",
        "coredns_dns_response_rcode_count_total": "coredns_dns_responses_total",
    }


def test_normalize_1_1_0_proxy_plugin_and_cache_size(shared_fixtures: Path) -> None:
    df = read_metrics(shared_fixtures / "metrics" / "datadog_coredns_v1.1.0_metrics.prom")
    norm = normalize_metric_names(df)
    # coredns_cache_size (2 series in the file) -> coredns_cache_entries
    assert norm.filter(pl.col("metric") == "coredns_cache_entries").height == 2
    # the old proxy plugin: 17 buckets + sum + count + request_count_total = 20 series, labelled
    proxy = norm.filter(pl.col("proxy_name") == "proxy")
    assert proxy.height == 20
    assert set(proxy["metric"]) == {
        "coredns_proxy_request_duration_seconds_bucket",
        "coredns_proxy_request_duration_seconds_sum",
        "coredns_proxy_request_duration_seconds_count",
        "coredns_proxy_request_count_total",
    }
    assert norm.columns[4:] == sorted(norm.columns[4:]) and "proxy_name" in norm.columns
    check_schema(norm, METRICS_BASE_SCHEMA)


def test_normalize_1_10_forward_equals_1_11_proxy(data_dir: Path) -> None:
    old = read_metrics(data_dir / "metrics" / "text_coredns_1_10_forward.prom", scrape_time=SCRAPE)
    new = read_metrics(data_dir / "metrics" / "text_coredns_1_11_proxy.prom", scrape_time=SCRAPE)
    norm = normalize_metric_names(old)
    # the 1.11 scrape is already canonical: nothing to do
    assert normalize_metric_names(new).equals(new)
    # every 1.11 series (name + labels + value) now exists in the mapped 1.10 scrape ...
    cols = new.columns[4:]
    assert set(cols) <= set(norm.columns)

    def series(df: pl.DataFrame) -> set[tuple]:
        return set(df.select("metric", "value", *cols).iter_rows())

    assert series(new) <= series(norm)
    # ... and the one extra is forward_requests_total, which 1.11 dropped (kept, not double counted)
    extra = series(norm) - series(new)
    assert {m for m, *_ in extra} == {"coredns_forward_requests_total"}


@pytest.mark.parametrize(
    ("name", "labels", "want"),
    [
        ("coredns_dns_request_count_total", None, ("coredns_dns_requests_total", {})),
        ("coredns_forward_request_count_total", None, ("coredns_forward_requests_total", {})),
        (
            "coredns_forward_healthcheck_failure_count_total",
            None,
            ("coredns_proxy_healthcheck_failures_total", {"proxy_name": "forward"}),
        ),
        (
            "coredns_forward_request_duration_seconds_count",
            None,
            ("coredns_proxy_request_duration_seconds_count", {"proxy_name": "forward"}),
        ),
        (
            "coredns_forward_request_duration_seconds",
            None,
            ("coredns_proxy_request_duration_seconds", {"proxy_name": "forward"}),
        ),
        (
            "coredns_proxy_request_duration_seconds_bucket",
            {"proxy_proto": "udp", "to": "8.8.8.8:53"},
            ("coredns_proxy_request_duration_seconds_bucket", {"proxy_name": "proxy"}),
        ),
        (
            "coredns_proxy_request_duration_seconds_bucket",
            {"proxy_name": "forward"},
            ("coredns_proxy_request_duration_seconds_bucket", {}),
        ),
        ("coredns_cache_size", None, ("coredns_cache_entries", {})),
        (
            "coredns_dns_request_type_count_total",
            None,
            ("coredns_dns_request_type_count_total", {}),
        ),
        ("up", None, ("up", {})),
    ],
)
def test_canonical_metric_table(name: str, labels: dict | None, want: tuple) -> None:
    assert canonical_metric(name, labels) == want


def test_normalize_old_and_new_name_same_series_warns(tmp_path: Path) -> None:
    p = tmp_path / "mixed.prom"
    p.write_text(
        "coredns_panic_count_total 1 1700000000000\ncoredns_panics_total 1 1700000000000\n"
    )
    df = read_metrics(p)
    assert df.height == 2
    with pytest.warns(KitWarning, match="1 sample"):
        norm = normalize_metric_names(df)
    assert norm.rows() == [(_dt(1700000000), "coredns_panics_total", 1.0, "mixed.prom")]


# ---------------------------------------------------------------------------------------------
# Text exposition, checked against the real Prometheus: it scrapes the real fixtures over
# 127.0.0.1 and its API answer (read back with read_metrics) must hold the same samples.


@pytest.mark.server
def test_text_fixtures_match_a_real_prometheus_scrape(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    import functools
    import http.server
    import os
    import signal
    import socket
    import subprocess
    import threading
    import time
    import urllib.parse
    import urllib.request

    from conftest import require_tool

    prometheus = require_tool("prometheus")
    fixtures = shared_fixtures / "metrics"
    names = sorted(p.name for p in fixtures.glob("*.prom"))
    assert len(names) == 4

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(fixtures))
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jobs = "".join(
        f"  - job_name: '{n}'\n    metrics_path: /{n}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{files.server_address[1]}']}}]\n"
        for n in names
    )
    (tmp_path / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def query(expr: str) -> bytes:
        url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read()

    try:
        deadline = time.monotonic() + 60
        while True:  # every target scraped once, successfully
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                up = json.loads(query("up"))["data"]["result"]
                if len(up) == len(names) and all(x["value"][1] == "1" for x in up):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not scrape the fixtures in 60 s"
            time.sleep(0.3)
        answers = {}
        for n in names:
            answers[n] = tmp_path / f"{n}.json"
            answers[n].write_bytes(query(f'{{job="{n}",__name__!~"up|scrape_.+"}}'))
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        files.shutdown()
        files.server_close()

    def samples(df: pl.DataFrame) -> list[tuple]:
        labels = [c for c in df.columns[4:] if c not in ("job", "instance")]
        rows = df.select("metric", "value", *labels).iter_rows()
        return sorted(
            tuple(str(x) for x in (m, v, *sorted(zip(labels, rest, strict=True))))
            for m, v, *rest in rows
        )

    for n in names:
        ours = read_metrics(fixtures / n, scrape_time=SCRAPE)
        theirs = read_metrics(answers[n])  # the API's vector answer, through the JSON path
        assert theirs.height == ours.height, n
        assert set(theirs["job"]) == {n}
        assert samples(theirs) == samples(ours), n


# ---------------------------------------------------------------------------------------------
# Odd and hostile input


def test_native_histograms_count_and_sum_read_buckets_flagged(data_dir: Path) -> None:
    with pytest.warns(
        KitWarning, match=r"1 native-histogram sample\(s\): only their count and sum were read"
    ):
        df = read_metrics(data_dir / "metrics" / "api_native_histogram.json")
    # the file: histogram {"count":"12","sum":"3.5", buckets...} and a float sample 12
    assert sorted(df.select("metric", "value", "server").rows()) == [
        ("coredns_dns_request_duration_seconds_count", 12.0, "dns://:53"),
        ("coredns_dns_request_duration_seconds_sum", 3.5, "dns://:53"),
        ("coredns_dns_requests_total", 12.0, "dns://:53"),
    ]


def test_prometheus3_quoted_utf8_names(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "text_utf8_quoted_names.prom", scrape_time=SCRAPE)
    assert df.select("metric", "value", "server", "zone.name", "a").rows() == [
        ("coredns.dns.requests", 5.0, "dns://:53", "example.org.", None),
        ("plain_total", 2.0, None, None, "1"),  # trailing comma in the braces
    ]


def test_non_utf8_bytes_name_line_and_offset(data_dir: Path) -> None:
    path = data_dir / "metrics" / "text_latin1_bytes.prom"
    raw = path.read_bytes()
    with pytest.raises(InputFormatError) as ei:
        read_metrics(path)
    # the Latin-1 'é' (0xe9) is the first non-UTF-8 byte, on line 1
    assert ei.value.line == 1
    offset = raw.index(bytes([0xE9]))
    assert f"invalid byte at offset {offset}" in str(ei.value)


@pytest.mark.parametrize(
    "line",
    [
        'x{a="1"',  # no closing brace and no value
        'x{a="1"}',  # no value
        'x{a="1"} 1 2 3',  # too many fields
        "x{a=1} 1",  # unquoted label value
        'x{a="1",a="2"} 1',  # label twice
        'x{__name__="y"} 1',  # a second name
        "x 1_000",  # Go's ParseFloat refuses underscores (Python's float() would take it)
        "x 0x1F",  # hex integer without exponent: not a Go float literal
        "x 1 1.5",  # float timestamp in 0.0.4
        'x{a="1"}1',  # no blank before the value
        "# TYPE x countr",  # unknown metric type
    ],
)
def test_malformed_text_lines_rejected(tmp_path: Path, line: str) -> None:
    p = tmp_path / "bad.prom"
    p.write_text("ok 1\n" + line + "\n")
    with pytest.raises(InputFormatError) as ei:
        read_metrics(p, scrape_time=SCRAPE, fmt="text")
    assert ei.value.line == 2 and ei.value.excerpt == line


def test_hostile_label_values_survive(tmp_path: Path) -> None:
    p = tmp_path / "hostile.prom"
    value = '<script>"\\\n{}=, #'  # every character that matters to the parser
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    p.write_text('x{qname="' + escaped + '",b="} 1 2"} 3 1700000000000\n')
    df = read_metrics(p)
    assert df.select("qname", "b", "value").rows() == [(value, "} 1 2", 3.0)]


def test_docstring_documents_every_base_column() -> None:
    doc = read_metrics.__doc__ or ""
    for name in METRICS_BASE_SCHEMA:
        assert f"``{name}``" in doc, name
    assert "Datetime[us, UTC]" in doc and "Float64" in doc and "String" in doc


def test_label_names_that_clash_with_internals_or_renames(tmp_path: Path) -> None:
    p = tmp_path / "names.prom"
    # 'sid', 'src', 'where', '_row' are harmless names; 'source' is renamed, and so is a
    # 'label_source' that would collide with the renamed one
    p.write_text(
        'x{sid="1",src="2",where="3",_row="4",source="5",label_source="6"} 7 1700000000000\n'
    )
    with pytest.warns(KitWarning, match=r"renamed: \{'source': 'label_label_source'\}"):
        df = read_metrics(p)
    assert df.columns[4:] == ["_row", "label_label_source", "label_source", "sid", "src", "where"]
    assert df.row(0)[4:] == ("4", "5", "6", "1", "2", "3")


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        ("x 1 99999999999999999999\n", "text"),  # ms beyond int64 microseconds
        ("x 1 1e300\n", "openmetrics"),
        ('[{"metric":{},"values":[[1e300,"1"]]}]', "api-json"),
        # milliseconds where seconds belong: 1700000000000 s would be the year 55,800
        ("x 1 1700000000000\n# EOF\n", "openmetrics"),
        ('[{"metric":{},"values":[[1700000000000,"1"]]}]', "api-json"),
    ],
)
def test_absurd_timestamps_are_input_errors(tmp_path: Path, content: str, fmt: str) -> None:
    p = tmp_path / "far.txt"
    p.write_text(content)
    with pytest.raises(InputFormatError, match=r"timestamp out of range|is not in seconds"):
        read_metrics(p, fmt=fmt)  # type: ignore[arg-type]


def test_api_empty_label_name_rejected(tmp_path: Path) -> None:
    p = tmp_path / "empty_name.json"
    p.write_text('[{"metric":{"":"x"},"values":[[1700000000,"1"]]}]')
    with pytest.raises(
        InputFormatError,
        match=r"result\[0\]\.metric is not an object of string labels with non-empty names",
    ):
        read_metrics(p)


def test_truncated_gzip_strict_and_lenient(shared_fixtures: Path, tmp_path: Path) -> None:
    import gzip

    src = shared_fixtures / "metrics" / "datadog_coredns_v1.1.0_metrics.prom"
    blob = gzip.compress(src.read_bytes())
    p = tmp_path / "cut.prom.gz"
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(
        InputFormatError, match=r"cut\.prom\.gz: damaged gzip stream: truncated gzip"
    ):
        read_metrics(p, scrape_time=SCRAPE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_metrics(p, scrape_time=SCRAPE, strict=False)
    # the damage itself, plus whatever the cut did to the last line or histogram
    assert all(issubclass(w.category, KitWarning) for w in caught)
    assert "damaged gzip" in str(caught[0].message)
    # what decompressed is a prefix of the file: its complete sample lines are all read
    full = read_metrics(src, scrape_time=SCRAPE)
    assert 0 < df.height < full.height
    assert df.select("metric", "value").rows() == full.select("metric", "value").rows()[: df.height]


def test_every_line_accounted_for_in_the_log(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "metrics" / "text_bad_lines.prom"
    n_lines = len(path.read_text().splitlines())  # 6
    with caplog.at_level("INFO", logger="kit.sources.metrics.prometheus"), pytest.warns(KitWarning):
        read_metrics(path, scrape_time=SCRAPE, strict=False)
    m = re.search(
        r"(\d+) samples, (\d+) comment/metadata lines, (\d+) blank lines, (\d+) rejected",
        caplog.text,
    )
    assert m is not None
    samples, comments, blanks, rejected = map(int, m.groups())
    assert (samples, comments, blanks, rejected) == (3, 1, 0, 2)
    assert samples + comments + blanks + rejected == n_lines


def test_coredns_versions_inferred_range_holds_build_info(shared_fixtures: Path) -> None:
    from kit.sources.metrics.prometheus import coredns_versions

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    files = sorted((shared_fixtures / "metrics").glob("*.prom"))
    frames = [read_metrics(f, scrape_time=SCRAPE) for f in files]
    got = pl.concat([coredns_versions(f) for f in frames])
    assert got.height == 4
    by_source = {r["source"]: r for r in got.iter_rows(named=True)}
    # the file names carry the version (PROVENANCE), so does coredns_build_info{version}
    for name, version in [
        ("datadog_coredns_v1.1.0_metrics.prom", "1.1.0"),
        ("netdata_coredns_v1.6.9_some_load.prom", "1.6.9"),
        ("netdata_coredns_v1.7.0_some_load.prom", "1.7.0"),
    ]:
        r = by_source[name]
        assert r["build_info"] == version
        # the range comes from names/labels only and must contain the real version
        assert r["min_version"] is None or key(r["min_version"]) <= key(version)
        assert r["max_version"] is None or key(version) <= key(r["max_version"])
        assert r["evidence"]
    assert (
        by_source["datadog_coredns_v1.1.0_metrics.prom"]["max_version"] == "1.4.0"
    )  # proxy plugin
    assert by_source["netdata_coredns_v1.7.0_some_load.prom"]["min_version"] == "1.7.0"
    # no version label in build_info: only the names tell (coredns_panics_total: 1.7.0+)
    nv = by_source["netdata_coredns_no_version_no_load.prom"]
    assert nv["build_info"] is None and nv["min_version"] == "1.7.0"


def test_coredns_versions_1_11_proxy(data_dir: Path) -> None:
    from kit.sources.metrics.prometheus import coredns_versions

    new = read_metrics(data_dir / "metrics" / "text_coredns_1_11_proxy.prom", scrape_time=SCRAPE)
    old = read_metrics(data_dir / "metrics" / "text_coredns_1_10_forward.prom", scrape_time=SCRAPE)
    assert coredns_versions(new).select("min_version", "max_version").row(0) == ("1.11.0", None)
    assert coredns_versions(old).select("min_version", "max_version").row(0) == ("1.7.0", "1.10.1")


@pytest.mark.parametrize("fmt", ["auto", "api-json", "grafana-json"])
def test_deeply_nested_json_is_an_input_error(tmp_path: Path, fmt: str) -> None:
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputFormatError, match="nested too deeply"):
        read_metrics(p, fmt=fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "doc",
    [
        '[{"metric":{},"values":[[[1],"1"]]}]',  # a list where the time belongs
        '[{"metric":{},"values":[[1700000000,{"a":1}]]}]',  # an object where the value belongs
        '{"status":"success","warnings":7,"data":{"resultType":"vector","result":[{"metric":{},"value":[1,true]}]}}',
    ],
)
def test_api_json_wrong_types_are_input_errors(tmp_path: Path, doc: str) -> None:
    """Found by fuzzing: JSON of the wrong type anywhere is an InputFormatError, never a crash."""
    p = tmp_path / "odd.json"
    p.write_text(doc)
    with pytest.raises(InputFormatError, match=r"data\.result\[0\]|result\[0\]"):
        read_metrics(p)


def test_unnamed_series_from_different_exports_are_not_merged(
    repo_root: Path, tmp_path: Path
) -> None:
    # Two query_range exports of different expressions (p90 and p99) with the same labels: every
    # sample of both files must survive, and none is reported as a duplicate.
    files = [
        repo_root / "data" / "sample" / "prometheus" / "p90_response_time_5s.json",
        repo_root / "data" / "sample" / "prometheus" / "p99_response_time_5s.json",
    ]
    expected = sum(
        len(s["values"]) for f in files for s in json.loads(f.read_text())["data"]["result"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", KitWarning)
        df = read_metrics(files)
    assert df.height == expected
    assert df["metric"].null_count() == df.height
    assert sorted(df["source"].unique().to_list()) == [f.name for f in files]
    # a named series exported twice (two files) is still one series: first sample kept, warned
    named = files[0].parent / "request_list_current_all.json"
    copy = tmp_path / "again.json"
    copy.write_bytes(named.read_bytes())
    with pytest.warns(KitWarning, match="duplicate sample"):
        twice = read_metrics([named, copy])
    assert twice.height == read_metrics(named).height
