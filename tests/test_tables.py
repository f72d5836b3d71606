"""kit.tables: every frame of the report formatted for reading (issue 13)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from kit import tables


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.000127, "127 µs"),
        (0.0123, "12.3 ms"),
        (0.0035, "3.50 ms"),
        (8, "8.00 s"),
        (14.8, "14.8 s"),
        (31.009698, "31.0 s"),
        (150, "2.50 min"),
        (7200, "2.00 h"),
        (0.00099996, "1.00 ms"),  # rounding carries into the next unit
        (99.96, "1.67 min"),
        (0, "0 s"),
        (None, ""),
        (float("inf"), "∞"),
    ],
)
def test_format_duration(seconds: float | None, shown: str) -> None:
    assert tables.format_duration(seconds) == shown


def test_format_timestamp_is_utc_to_the_millisecond() -> None:
    t = dt.datetime(2026, 11, 26, 7, 9, 6, 998295, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert tables.format_timestamp(t) == "2026-11-26 06:09:06.998"
    assert tables.format_cell("2026-11-26T06:09:05.783670+00:00") == "2026-11-26 06:09:05.783"


def test_frame_html_reads_like_a_table_not_a_dump() -> None:
    df = pl.DataFrame(
        {
            "capture": ["node1", "node2"],
            "ts": [dt.datetime(2026, 11, 26, 6, 9, 6, 998295, tzinfo=dt.UTC)] * 2,
            "qname": ["<script>alert(1)</script>.example", 'say "hi" & bye'],
            "latency_s": [31.009698, 0.000127],
            "share": [0.474388, 0.0],
            "syn_retransmits": [3, 0],
        }
    )
    out = tables.frame_html(df)
    # no shape line, no dtype row, no quotes around strings
    assert "shape:" not in out and "str</" not in out and "f64" not in out
    assert "&quot;&lt;script" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in out and "<script" not in out
    assert "31.0 s" in out and "127 µs" in out and "47.4 %" in out
    assert "2026-11-26 06:09:06.998<" in out
    # numbers right-aligned, text left; long names may break after "_"
    assert "<th class=dnskit-num>syn_<wbr>retransmits</th>" in out
    assert "<td>node1</td>" in out and "<td class='dnskit-num'>3</td>" in out
    # polars' own HTML for the same frame is what the report showed before
    assert "shape:" in df._repr_html_()


def test_row_cap_says_how_many_more() -> None:
    out = tables.frame_html(pl.DataFrame({"n": list(range(32))}), max_rows=20)
    assert out.count("<tr>") == 1 + 20 + 1  # header, rows, the "more" line
    assert "12 more rows (of 32)" in out


def test_empty_frame_is_one_line() -> None:
    out = tables.frame_html(pl.DataFrame(schema={"qname": pl.String, "latency_s": pl.Float64}))
    assert out.startswith("<p class='dnskit-empty'>") and "<table" not in out
    assert "no rows" in out


def test_wide_tables_transpose_or_wrap() -> None:
    cols = {f"column_{i}": [i] for i in range(13)}
    one = tables.frame_html(pl.DataFrame(cols))
    assert "dnskit-transposed" in one and one.count("<tr>") == 1 + 13
    many = tables.frame_html(pl.DataFrame({k: v * 10 for k, v in cols.items()}))
    assert "dnskit-wide" in many and "dnskit-transposed" not in many


def test_control_bytes_are_visible() -> None:
    out = tables.frame_html(pl.DataFrame({"qname": ["a\x1b[31m\nb"]}))
    assert "\x1b" not in out and "\\x1b[31m\\nb" in out


def test_register_adds_the_formatted_table_to_every_frame_display() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        df = pl.DataFrame({"latency_s": [0.0123]})
        before, _ = shell.display_formatter.format(df)
        assert tables.TABLE_MIMETYPE not in before
        assert tables.register(shell)
        after, _ = shell.display_formatter.format(df)
        assert after[tables.TABLE_MIMETYPE] == tables.frame_html(df)
        assert "12.3 ms" in after[tables.TABLE_MIMETYPE]
        # polars' own HTML stays, for Jupyter and for code reading executed notebooks
        assert after["text/html"] == before["text/html"]
    finally:
        InteractiveShell.clear_instance()
