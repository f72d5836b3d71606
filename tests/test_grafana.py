"""kit.read_metrics on Grafana exports (CSV variants and DataFrame JSON), through kit.sources.metrics.grafana.

Expected counts come from reading the same files another way (polars' CSV reader, line counts) or
are worked out by hand in comments.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema
from kit.sources.metrics.grafana import parse_display_name, parse_formatted_value
from kit.sources.metrics.prometheus import METRICS_BASE_SCHEMA, read_metrics


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _contract(df: pl.DataFrame) -> None:
    check_schema(df, METRICS_BASE_SCHEMA)
    assert df.columns[4:] == sorted(df.columns[4:])
    assert df["ts"].null_count() == 0


def _non_null_cells(df: pl.DataFrame, skip: str = "Time") -> dict[str, int]:
    return {c: df[c].drop_nulls().len() for c in df.columns if c != skip}


# ---------------------------------------------------------------------------------------------
# Real exports from ../shared/fixtures/metrics


def test_geugenm_formatted_bom_crlf(shared_fixtures: Path) -> None:
    path = (
        shared_fixtures
        / "metrics"
        / "grafana_export_geugenm_seriestocolumns_formatted_crlf_bom.csv"
    )
    # independent reader: polars, cells as strings, empty = null
    ref = pl.read_csv(path, infer_schema=False, encoding="utf8")
    ref = ref.rename({ref.columns[0]: "Time"})  # polars keeps the BOM in the first name
    ref = ref.filter(~pl.all_horizontal(pl.all().is_null()))  # the final empty CRLF line
    assert ref.height == 1302  # data rows (PROVENANCE)
    df = read_metrics(path)
    _contract(df)
    assert df.columns == ["ts", "metric", "value", "source", "unit"]
    assert df["unit"].unique().to_list() == ["V"]
    counts = dict(df.group_by("metric").len().iter_rows())
    assert counts == _non_null_cells(ref)
    # values: the number before " V", summed per column, against polars' own parse
    for name in ["tlm_mb_ant_1_v", "tlm_trx_vbus"]:
        want = ref[name].str.strip_suffix(" V").cast(pl.Float64).sum()
        assert df.filter(pl.col("metric") == name)["value"].sum() == pytest.approx(want)
    # the last data row is out of time order: 2023-05-20 03:00:00,,,,,,,,3.2 V,4.5 V,5.0 V,4.5 V
    last = df.filter(pl.col("ts") == datetime(2023, 5, 20, 3, tzinfo=UTC))
    assert dict(zip(last["metric"], last["value"], strict=True)) == {
        "tlm_trx_cmn_rtc_vbat": 3.2,
        "tlm_trx_vbus": 4.5,
        "tlm_trx_pamp_voltage_tx": 5.0,
        "beacon_vbus": 4.5,
    }


def test_geugenm_naive_times_follow_csv_timezone(shared_fixtures: Path) -> None:
    path = (
        shared_fixtures
        / "metrics"
        / "grafana_export_geugenm_seriestocolumns_formatted_crlf_bom.csv"
    )
    utc = read_metrics(path)
    berlin = read_metrics(path, csv_timezone="Europe/Berlin")
    # first row 2023-05-25 03:00:00: CEST (UTC+2) in Berlin -> 01:00 UTC
    assert utc["ts"][0] == datetime(2023, 5, 25, 3, tzinfo=UTC)
    assert berlin["ts"][0] == datetime(2023, 5, 25, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown csv_timezone"):
        read_metrics(path, csv_timezone="Mars/Olympus")


def test_tenst_excel_sep_line_repeated_header_offsets(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "grafana_export_tenst_excel_columns.csv"
    # independent reader: skip the BOM+'sep=;' line and the second (comma) header row
    ref = pl.read_csv(path, separator=";", skip_rows=1, infer_schema=False, null_values="null")
    ref = ref.slice(1)
    assert ref.height == 28_551  # PROVENANCE: 28,551 data rows
    df = read_metrics(path)
    _contract(df)
    assert dict(df.group_by("series").len().iter_rows()) == _non_null_cells(ref)
    assert df["metric"].null_count() == df.height  # 'C.MeteoST_bme280' is no series selector
    # line 4: "2019-01-15T14:10:00+02:00";null;37.6;19.7;null -> 12:10 UTC
    first = df.filter(pl.col("ts") == datetime(2019, 1, 15, 12, 10, tzinfo=UTC))
    assert dict(zip(first["series"], first["value"], strict=True)) == {
        "C.Gas_boiler_supply": 37.6,
        "C.Kitchen_temp": 19.7,
    }
    # after the DST change: "2019-04-24T18:15:00+03:00";16.2;21.1;null;15.6 -> 15:15 UTC
    late = df.filter(pl.col("ts") == datetime(2019, 4, 24, 15, 15, tzinfo=UTC))
    assert sorted(late["value"].to_list()) == [15.6, 16.2, 21.1]


def test_heekof_series_rows_with_commas(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "grafana_export_heekof_series_rows.csv"
    text = path.read_text()
    n_rows = len(text.splitlines()) - 1  # minus the header
    df = read_metrics(path)
    _contract(df)
    assert df.height == n_rows == 20_234
    assert df["series"].n_unique() == 27  # PROVENANCE: 27 series
    name = "net.out_packets_sec.value(device=eth0,hostname=mini-mon,service=monitoring,)"
    s = df.filter(pl.col("series") == name)
    # rows 2-3: ...;2016-05-19T11:36:27.000Z;8.266666666666667 and ...;11:36:42.000Z;7.4
    assert s["ts"][:2].to_list() == [
        datetime(2016, 5, 19, 11, 36, 27, tzinfo=UTC),
        datetime(2016, 5, 19, 11, 36, 42, tzinfo=UTC),
    ]
    assert s["value"][:2].to_list() == [8.266666666666667, 7.4]
    assert s.height == text.count(name + ";")


def test_mpawlik_numeric_names_undefined_and_duplicate_times(shared_fixtures: Path) -> None:
    path = shared_fixtures / "metrics" / "grafana_export_mpawlik_columns.csv"
    ref = pl.read_csv(path, separator=";", infer_schema=False, null_values="undefined")
    assert ref.height == 1358
    # Grafana 4 repeated some times (e.g. 2017-09-14T18:30 on lines 1347, 1355, 1357, 1359):
    # Prometheus keeps the first sample of a series per timestamp, so the expected sample
    # count is the number of distinct (column, time) pairs with a value.
    long = ref.unpivot(index="Time", variable_name="series").drop_nulls("value")
    distinct = long.unique(["series", "Time"], keep="first", maintain_order=True)
    assert long.height - distinct.height == 36
    seen, first_repeat = set(), None  # line of the first row whose time was seen before
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        t = line.split(";", 1)[0]
        if t in seen and first_repeat is None:
            first_repeat = no
        seen.add(t)
    with pytest.warns(
        KitWarning,
        match=rf"36 duplicate sample\(s\) .* first dropped one at .*mpawlik_columns\.csv:{first_repeat}: ",
    ):
        df = read_metrics(path)
    _contract(df)
    assert df.height == distinct.height
    assert sorted(df["series"].unique()) == ["1024", "128", "2048", "256", "512"]
    # line 1347 is the first 18:30 row: its "1024" value is the one kept
    kept = df.filter(
        (pl.col("series") == "1024") & (pl.col("ts") == datetime(2017, 9, 14, 18, 30, tzinfo=UTC))
    )
    assert kept["value"].to_list() == [12.108949847416667]


# ---------------------------------------------------------------------------------------------
# Hand-made cases (tests/data/metrics/grafana_*)


def test_joined_raw_epoch_ms_selectors_and_legends(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_joined_raw_epoch_ms.csv")
    _contract(df)
    assert df.columns == ["ts", "metric", "value", "source", "instance", "job", "le", "series"]
    b = df.filter(pl.col("metric") == "coredns_dns_request_duration_seconds_bucket")
    assert b.select("instance", "le").unique().rows() == [("10.0.0.1:9153", "+Inf")]
    # 1589324745157.7249 ms -> ...745.157725 s (microseconds rounded)
    assert b["ts"].to_list()[0] == datetime(2020, 5, 12, 23, 5, 45, 157725, tzinfo=UTC)
    assert b["value"].to_list() == [0.6862745098039216, 1e-07, 3.0]
    unnamed = df.filter(pl.col("metric").is_null() & pl.col("job").is_not_null())
    assert unnamed["job"].unique().to_list() == ["kube-dns"]
    v = unnamed["value"].to_list()
    assert len(v) == 2 and math.isnan(v[0]) and v[1] == -math.inf  # first cell empty
    legend = df.filter(pl.col("series") == "p99 node-1")
    assert legend["value"].to_list() == [8.192, 0.5]  # middle cell empty


def test_excel_utf16_tab_formatted_units(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_excel_utf16_tab.csv")
    _contract(df)
    rows = {
        (r["metric"], r["ts"].minute): (r["value"], r["unit"]) for r in df.iter_rows(named=True)
    }
    # 900 ms -> 0.9 s ; 1.20 s -> 1.2 s : one series with unit "s"
    assert rows[("p99", 0)] == (pytest.approx(0.9), "s")
    assert rows[("p99", 1)] == (1.2, "s")
    # "1.50 K" -> 1500 (Grafana 'short' scale), "12 req/s" keeps its unit as written
    assert rows[("rate", 0)] == (1500.0, None)
    assert rows[("rate", 1)] == (12.0, "req/s")


def test_two_frames_separated_by_blank_line(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_two_frames.csv")
    assert df.select("metric", "job", "value").rows() == [
        ("up", "a", 1.0),
        ("up", "a", 0.0),
        ("up", "b", 1.0),
        ("up", "c", 1.0),
    ]


def test_csv_without_time_column(data_dir: Path) -> None:
    path = data_dir / "metrics" / "grafana_no_time_column.csv"
    with pytest.raises(InputFormatError) as ei:
        read_metrics(path)
    assert str(ei.value) == (
        f"{path}:1: Grafana CSV without a time column: 'Series A,Series B'. Expected a 'Time' "
        "column (series as columns) or a 'Series;Time;Value' header; export the panel data with "
        "its time field"
    )


def test_csv_bad_cell_strict_and_lenient(data_dir: Path) -> None:
    path = data_dir / "metrics" / "grafana_bad_cell.csv"
    with pytest.raises(
        InputFormatError,
        match=r"grafana_bad_cell\.csv:3: column 'a': not a number or a number with a unit: 'oops'",
    ):
        read_metrics(path)
    with pytest.warns(KitWarning, match=r"2 malformed CSV cell\(s\) skipped .*first at line 3"):
        df = read_metrics(path, strict=False)
    # line 2: 1,2 ; line 3: 'oops' rejected, 3 kept ; line 4: short row rejected ; line 5: 5,6
    assert df.select("metric", "value").rows() == [  # 'a', 'b' are valid metric names
        ("a", 1.0),
        ("a", 5.0),
        ("b", 2.0),
        ("b", 3.0),
        ("b", 6.0),
    ]


def test_csv_duplicate_column_names_kept_apart(data_dir: Path) -> None:
    with pytest.warns(KitWarning, match=r"columns with the same name \['Value'\]"):
        df = read_metrics(data_dir / "metrics" / "grafana_duplicate_columns.csv")
    assert df.select("metric", "series", "column", "value").rows() == [
        (None, "Value", "2", 1.0),
        (None, "Value", "3", 2.0),
    ]


def test_csv_header_only_is_empty_frame(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_header_only.csv")
    assert df.is_empty() and df.schema == METRICS_BASE_SCHEMA


def test_dataframe_json_list_entities_nanos_labels(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_dataframe_list.json")
    _contract(df)
    assert df.columns == ["ts", "metric", "value", "source", "instance", "server"]
    a = df.filter(pl.col("server") == "dns://:53")
    # values [0.0023, null, null, null] with entities NaN:[1], Inf:[2], Undef:[3]
    v = a["value"].to_list()
    assert len(v) == 3 and v[0] == 0.0023 and math.isnan(v[1]) and v[2] == math.inf
    assert a["metric"].null_count() == 3  # field 'Value' without __name__
    b = df.filter(pl.col("metric") == "coredns_dns_requests_total")
    assert b["value"].to_list() == [10.0, 25.5]
    # 1702881057357 ms + 123456 ns -> ...057.357123 s
    assert b["ts"].to_list()[0] == datetime(2023, 12, 18, 6, 30, 57, 357123, tzinfo=UTC)
    assert "view" not in df.columns  # view="" is no label


def test_dataframe_json_query_response(data_dir: Path) -> None:
    df = read_metrics(data_dir / "metrics" / "grafana_query_response.json")
    assert df.select("ts", "metric", "value", "job").rows() == [
        (_dt(1700000000), "up", 1.0, "node"),
        (_dt(1700000015), "up", -math.inf, "node"),  # entities NegInf:[1]
    ]


def test_dataframe_json_panel_data_bad_value(data_dir: Path) -> None:
    path = data_dir / "metrics" / "grafana_panel_data_bad_value.json"
    oops_line = next(no for no, ln in enumerate(path.read_text().splitlines(), 1) if '"oops"' in ln)
    with pytest.raises(InputFormatError) as ei:
        read_metrics(path)
    assert ei.value.line == oops_line
    with pytest.raises(
        InputFormatError, match=r"series\[0\]\.fields\[1\]\.values\[1\]: not a number: 'oops'"
    ):
        read_metrics(path)
    with pytest.warns(KitWarning, match="1 malformed frame value"):
        df = read_metrics(path, strict=False)
    # legend-only field: metric null, series = frame name; string field 'note' carries no samples
    assert df.select("metric", "value", "series").rows() == [(None, 0.5, "legend text")]


@pytest.mark.parametrize(
    ("cell", "want"),
    [
        ("0.5", (0.5, None)),
        ("NaN", (math.nan, None)),
        ("1.50 ms", (0.0015, "s")),
        ("250 µs", (0.00025, "s")),
        ("2 min", (120.0, "s")),
        ("4.4 V", (4.4, "V")),
        ("1.5 KiB", (1536.0, "B")),
        ("3 Mil", (3e6, None)),
        ("12.51 °C", (12.51, "°C")),
        ("99.5%", (99.5, "%")),
    ],
)
def test_parse_formatted_value(cell: str, want: tuple[float, str | None]) -> None:
    value, unit = parse_formatted_value(cell)
    assert unit == want[1]
    assert value == pytest.approx(want[0], nan_ok=True)


@pytest.mark.parametrize("cell", ["", "abc", "1,5 V", "--1"])
def test_parse_formatted_value_rejects(cell: str) -> None:
    with pytest.raises(ValueError):
        parse_formatted_value(cell)


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("up", ("up", {})),
        ("Value", (None, {"series": "Value"})),
        ('up{job="a", instance="x:1"}', ("up", {"job": "a", "instance": "x:1"})),
        ('{__name__="up", job="a"}', ("up", {"job": "a"})),
        ('{job="a,b"}', (None, {"job": "a,b"})),
        ("p99 node-1", (None, {"series": "p99 node-1"})),
        ("net.out(device=eth0,)", (None, {"series": "net.out(device=eth0,)"})),
        ('up{job="a"} junk', (None, {"series": 'up{job="a"} junk'})),
    ],
)
def test_parse_display_name(name: str, want: tuple) -> None:
    assert parse_display_name(name) == want


def test_backend_frames_response_equals_the_api_answer(
    data_dir: Path, shared_fixtures: Path
) -> None:
    """Grafana's {"status": 200, "frames": [...]} (not a Prometheus envelope despite 'status')."""
    frames = read_metrics(data_dir / "metrics" / "grafana_backend_frames_range_simple.json")
    api = read_metrics(shared_fixtures / "metrics" / "grafana_range_simple.result.json")
    assert frames.drop("source").equals(api.drop("source"))


def test_every_cell_accounted_for_in_the_log(
    shared_fixtures: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = shared_fixtures / "metrics" / "grafana_export_tenst_excel_columns.csv"
    with caplog.at_level("INFO", logger="kit.sources.metrics.grafana"):
        read_metrics(path)
    m = re.search(
        r"Grafana CSV: (\d+) samples, (\d+) empty/null cells, (\d+) rejected", caplog.text
    )
    assert m is not None
    samples, empty, rejected = map(int, m.groups())
    assert samples + empty + rejected == 28_551 * 4  # data rows x series columns
    assert "1 repeated header row(s)" in caplog.text  # the comma-separated second header


def test_csv_control_bytes_and_huge_fields(tmp_path: Path) -> None:
    p = tmp_path / "nul.csv"
    p.write_text("Time,a\n1700000000000,1\x00\n")
    # a NUL after the number is no unit: the cell is rejected, on line 2
    with pytest.raises(
        InputFormatError, match=r"nul\.csv:2: column 'a': not a number or a number with a unit"
    ):
        read_metrics(p)
    big = tmp_path / "big.csv"
    big.write_text('Time,a\n1700000000000,"' + "x" * 200_000 + '"\n')
    with pytest.raises(
        InputFormatError, match=r"big\.csv:2: CSV does not parse \(field larger than field limit"
    ):
        read_metrics(big)


def test_dataframe_json_wrong_types_do_not_crash(tmp_path: Path) -> None:
    """Found by fuzzing: entities/nanos/enums of the wrong type are ignored, values still read."""
    p = tmp_path / "odd.json"
    p.write_text(
        '{"schema":{"fields":[{"name":"Time","type":"time"},{"name":"up","type":"number"}]},'
        '"data":{"values":[[1700000000000],[1]],"entities":7,"nanos":{"0":1},"enums":true}}'
    )
    df = read_metrics(p)
    assert df.select("ts", "metric", "value").rows() == [
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "up", 1.0)
    ]
