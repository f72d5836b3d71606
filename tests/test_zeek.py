"""Zeek dns.log reader (kit.sources.zeek): Zeek's own test baselines and documentation output
(tests/data/zeek, provenance in tests/data/PROVENANCE), TSV and JSON."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFormatError, KitWarning
from kit.schema import DNS_RECORDS_SCHEMA, ZEEK_DNS_SCHEMA
from kit.sources.capture import DNS_SCHEMA
from kit.sources.detect import detect
from kit.sources.zeek import read_zeek_dns

DATA = Path(__file__).resolve().parent / "data" / "zeek"


def _tsv_records(path: Path) -> list[dict[str, str]]:
    """Records of a TSV dns.log read the plain way: the #fields line names the columns."""
    lines = path.read_text().splitlines()
    fields = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
    return [dict(zip(fields, ln.split("\t"), strict=True)) for ln in lines if ln[:1] != "#"]


def test_every_sample_is_recognised() -> None:
    kinds = {p.name: detect(p).kind for p in DATA.iterdir()}
    assert set(kinds.values()) == {"zeek_dns_log"}, kinds


def test_shared_columns_have_the_capture_types() -> None:
    assert list(ZEEK_DNS_SCHEMA)[: len(DNS_RECORDS_SCHEMA)] == list(DNS_RECORDS_SCHEMA)
    for name, dtype in DNS_RECORDS_SCHEMA.items():
        if name in DNS_SCHEMA:
            assert DNS_SCHEMA[name] == dtype, name


@pytest.mark.parametrize(
    "name", ["multiple-txt-strings.dns.log", "duplicate-reponses.dns.log", "zero-responses.dns.log"]
)
def test_tsv_baselines(name: str) -> None:
    path = DATA / name
    r = read_zeek_dns(path)
    want = _tsv_records(path)
    assert r.dns.height == r.records == len(want)
    assert r.records + r.other == r.lines == len(path.read_text().splitlines())
    assert r.rejected.is_empty()
    for row, rec in zip(r.dns.iter_rows(named=True), want, strict=True):
        ts = datetime.fromtimestamp(float(rec["ts"]), tz=UTC)
        assert abs((row["ts"] - ts).total_seconds()) < 1e-6
        assert row["client_ip"] == rec["id.orig_h"] and row["server_ip"] == rec["id.resp_h"]
        assert row["client_port"] == int(rec["id.orig_p"]) and row["dns_id"] == int(rec["trans_id"])
        assert row["qname"] == (None if rec["query"] == "-" else rec["query"])
        assert row["rcode"] == rec["rcode_name"]
        answers = rec["answers"]
        assert row["answers"] == (0 if answers == "-" else len(answers.split(",")))
        assert row["tc"] is (rec["TC"] == "T")
        assert row["uid"] == rec["uid"]


def test_unset_rtt_and_qtype_are_null() -> None:
    row = read_zeek_dns(DATA / "multiple-txt-strings.dns.log").dns.row(0, named=True)
    assert row["latency_s"] is None and row["ts_response"] is None and row["qtype"] is None
    assert row["answered"] is True  # an rcode was logged


def test_json_lines_from_zeeks_documentation() -> None:
    path = DATA / "log-formats.dns.json.log"
    r = read_zeek_dns(path)
    recs = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert r.dns["dns_id"].to_list() == [x["trans_id"] for x in recs]
    assert r.dns["qtype"].to_list() == ["AAAA", "A"]
    a = r.dns.row(1, named=True)
    assert a["latency_s"] == recs[1]["rtt"]
    # the documentation's tcpdump output has this answer at 14:39:59.372840 (2020-06-05 UTC)
    assert a["ts_response"] == datetime(2020, 6, 5, 14, 39, 59, 372840, tzinfo=UTC)
    assert a["answers"] == 1
    aaaa = r.dns.row(0, named=True)
    assert aaaa["latency_s"] is None and aaaa["answers"] == 0


def test_tsv_and_json_of_one_log_give_one_frame(tmp_path: Path) -> None:
    """The TSV baseline written as Zeek's JSON writer would: the same frame (but the source)."""
    src = DATA / "duplicate-reponses.dns.log"
    out = []
    for rec in _tsv_records(src):
        obj: dict = {}
        for k, v in rec.items():
            if v == "-":
                continue
            if k in ("answers", "TTLs"):
                obj[k] = v.split(",") if k == "answers" else [float(x) for x in v.split(",")]
            elif k in ("AA", "TC", "RD", "RA", "rejected"):
                obj[k] = v == "T"
            elif k == "ts":
                obj[k] = float(v)
            elif k in ("id.orig_p", "id.resp_p", "trans_id", "qclass", "qtype", "rcode", "Z"):
                obj[k] = int(v)
            else:
                obj[k] = v
        out.append(json.dumps(obj))
    j = tmp_path / "dns.log.gz"
    j.write_bytes(gzip.compress(("\n".join(out) + "\n").encode()))
    assert detect(j).kind == "zeek_dns_log"
    a = read_zeek_dns(src).dns.drop("source", "line_no")
    b = read_zeek_dns(j).dns.drop("source", "line_no")
    assert a.equals(b)


def test_bad_input_is_a_kit_error_or_a_counted_reject(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError) as exc:
        read_zeek_dns(DATA / "flip-canonified.dns.log")  # btest-canonified timestamps only
    assert exc.value.line == 10 and "XXXXXXXXXX" in str(exc.value)
    lines = (DATA / "zero-responses.dns.log").read_text().splitlines()
    data_at = next(i for i, ln in enumerate(lines) if ln[:1] != "#")
    broken = [*lines[: data_at + 1], "1349445121.5\tCx\tonly\tthree", *lines[data_at + 1 :]]
    p = tmp_path / "dns.log"
    p.write_text("\n".join(broken) + "\n")
    with pytest.warns(KitWarning, match="1 unreadable Zeek dns.log record"):
        r = read_zeek_dns(p)
    assert r.dns.height == 1 and r.rejected["line_no"].to_list() == [data_at + 2]
    assert r.records + r.other == r.lines
    with pytest.raises(InputFormatError, match="4 fields"):
        read_zeek_dns(p, strict=True)
    conn = tmp_path / "conn.log"
    conn.write_text("#separator \\x09\n#path\tconn\n#fields\tts\tuid\n1.0\tC\n")
    with pytest.raises(InputFormatError, match=r"conn\.log, not a dns\.log"):
        read_zeek_dns(conn)


def test_hostile_names_are_kept_as_data(tmp_path: Path) -> None:
    rec = json.loads((DATA / "log-formats.dns.json.log").read_text().splitlines()[1])
    rec["query"] = '<script>"x"</script>.example'
    p = tmp_path / "dns.json"
    p.write_text(json.dumps(rec) + "\n")
    assert read_zeek_dns(p).dns["qname"].to_list() == [rec["query"]]


def test_lazy_export_and_time_type() -> None:
    assert kit.read_zeek_dns is read_zeek_dns
    df = read_zeek_dns(sorted(p for p in DATA.iterdir() if "canonified" not in p.name)).dns
    assert df.schema["ts"] == pl.Datetime("us", "UTC")
    assert df["latency_s"].drop_nulls().to_list() == [pytest.approx(0.06685185432434082, abs=1e-9)]
    assert (
        df["ts_response"].drop_nulls() - df["ts"].filter(df["ts_response"].is_not_null())
    ).to_list() == [timedelta(microseconds=66852)]


def test_fuzz_findings_are_rejects_not_tracebacks(tmp_path: Path) -> None:
    """Mutation-fuzz findings: a bare '#separator' header (IndexError), bytes that are not UTF-8
    (UnicodeEncodeError in the frame), a runaway-nested JSON line (RecursionError)."""
    text = (DATA / "zero-responses.dns.log").read_text()
    p = tmp_path / "a.log"
    p.write_bytes(
        text.replace("#separator \\x09", "#separator")
        .replace("psu.edu", "ps\xffu.edu")
        .encode("latin-1")
    )
    r = read_zeek_dns(p)
    assert r.dns.height == 1 and "\ufffd" in r.dns["qname"][0]
    line = (DATA / "log-formats.dns.json.log").read_text().splitlines()[1]
    q = tmp_path / "b.log"
    q.write_text(line + "\n" + '{"ts": ' + "[" * 100000 + "\n")
    with pytest.warns(KitWarning):
        r2 = read_zeek_dns(q)
    assert r2.dns.height == 1 and r2.rejected["reason"].to_list() == [
        "JSON nested too deeply to read"
    ]
