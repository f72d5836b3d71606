"""kit.read_coredns_log and the CoreDNS helpers.

Expected values come from the input text itself (computed by hand in comments), or from an
independent Python ``re``/``json`` reading of the real files in ../shared/fixtures/logs.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import warnings
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kit
import kit.sources.coredns.reader as coredns_reader
from kit.analyses.summary import summarize_file
from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema
from kit.sources.coredns import (
    ERRORS_SCHEMA,
    FILES_SCHEMA,
    OTHER_SCHEMA,
    QUERIES_SCHEMA,
    REJECTED_SCHEMA,
    CoreDNSLog,
    error_counts,
    query_latency,
    read_coredns_log,
    slow_queries,
)

UTC = dt.UTC
FRAMES = ("queries", "errors", "other", "rejected")


@pytest.fixture(scope="module")
def cdata(data_dir: Path) -> Path:
    return data_dir / "coredns"


@pytest.fixture(scope="module")
def real_logs(shared_fixtures: Path) -> list[Path]:
    return sorted((shared_fixtures / "logs").glob("*.log"))


def physical_lines(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def check_partition(res: CoreDNSLog) -> None:
    """Every record in exactly one frame; records + joined lines == physical lines."""
    for name, schema in zip(
        FRAMES, (QUERIES_SCHEMA, ERRORS_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA), strict=True
    ):
        check_schema(getattr(res, name), schema, name=name)
    check_schema(res.files, FILES_SCHEMA, name="files")
    keys = pl.concat([getattr(res, n).select("source", "line_no") for n in FRAMES])
    assert keys.is_duplicated().sum() == 0
    assert res.records + int(res.files["joined_lines"].sum()) == res.lines_read


def read(path: Path, **kw: object) -> CoreDNSLog:
    with pytest.warns(KitWarning) if kw.pop("warns", False) else _nullcontext():
        res = read_coredns_log(path, **kw)  # type: ignore[arg-type]
    check_partition(res)
    return res


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


# --- documentation and public API ----------------------------------------------------------------


def test_public_names_and_schema_documented() -> None:
    assert kit.read_coredns_log is read_coredns_log
    assert kit.CoreDNSLog is CoreDNSLog
    doc = read_coredns_log.__doc__ or ""
    for schema in (QUERIES_SCHEMA, ERRORS_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA, FILES_SCHEMA):
        for col in schema:
            assert f"``{col}``" in doc, f"column {col} is not documented"


# --- formats, one fixture per case -----------------------------------------------------------------


def test_default_format_fields(cdata: Path) -> None:
    q = read(cdata / "default_modern.log").queries
    assert q["line_no"].to_list() == list(range(1, 9))
    r = q.row(0, named=True)
    # [INFO] [::1]:50759 - 29008 "A IN example.org. udp 41 false 4096" NOERROR qr,rd,ra,ad 68 0.037990251s
    assert (r["client_ip"], r["client_port"], r["query_id"]) == ("::1", 50759, 29008)
    assert (r["qtype"], r["qclass"], r["qname"], r["proto"]) == ("A", "IN", "example.org", "udp")
    assert (r["req_size"], r["do_bit"], r["bufsize"]) == (41, False, 4096)
    assert (r["rcode"], r["rflags"], r["resp_size"], r["duration_s"]) == (
        "NOERROR",
        "qr,rd,ra,ad",
        68,
        0.037990251,
    )
    assert r["ts"] is None and r["opcode"] is None
    # case preserved, trailing dot stripped, tcp with DO bit
    assert (
        q["qname"][1] == "Mixed.Case.Example" and q["do_bit"][1] is True and q["proto"][1] == "tcp"
    )
    # escaped space in the name, empty flags (two spaces), IPv6 client, unknown type, "1s"
    assert (
        q["qname"][2] == r"foo\ bar.example"
        and q["rflags"][2] == ""
        and q["client_ip"][2] == "fd00::a:1"
    )
    assert q["qtype"][2] == "TYPE65534" and q["qclass"][2] == "CH" and q["duration_s"][2] == 1.0
    # escaped quote and hostile characters in the name
    assert q["qname"][3] == 'a\\"q<b>&.example' and q["query_id"][3] == 65535
    # <= 1.8.4 failed forward: NOERROR - 0 6.010923182s; >= 1.8.5: - - 0
    assert (q["rcode"][4], q["rflags"][4], q["resp_size"][4]) == ("NOERROR", None, 0)
    assert (q["rcode"][5], q["rflags"][5], q["duration_s"][5]) == (None, None, 5.000450902)
    # root name stays ".", {combined} opcode "0"
    assert q["qname"][6] == "." and q["opcode"][6] == 0
    assert q["qname"][7] == r"\200x.example" and q["duration_s"][7] == 12.25


def test_timestamped_era_and_offsets(cdata: Path) -> None:
    res = read(cdata / "timestamped_1.3.log")
    q = res.queries
    assert q["ts"].to_list() == [
        dt.datetime(2019, 1, 24, 16, 18, 8, 501000, tzinfo=UTC),
        # 22:13:36.289 at -07:00 is 05:13:36.289 UTC the next day
        dt.datetime(2019, 3, 19, 5, 13, 36, 289000, tzinfo=UTC),
    ]
    e = res.errors.row(0, named=True)
    assert e["upstream"] == "[2001:db8::53]:53" and e["server_ip"] == "2001:db8::53"
    assert e["server_port"] == 53 and e["local_addr"] == "10.244.0.130:41000"
    assert e["ts"] == dt.datetime(2019, 1, 24, 16, 18, 9, tzinfo=UTC)
    o = res.other.row(0, named=True)
    assert (o["kind"], o["plugin"], o["level"]) == ("plugin", "reload", "INFO")
    assert o["ts"] == dt.datetime(2019, 1, 24, 16, 18, 10, 120000, tzinfo=UTC)


def test_bracketed_era_and_go_std_log(cdata: Path) -> None:
    res = read(cdata / "bracketed_1.1.log")
    q = res.queries
    # [07/Sep/2018:15:29:11 +0000] and [07/Sep/2018:17:29:12 +0200] (= 15:29:12 UTC)
    assert q["ts"].to_list() == [
        dt.datetime(2018, 9, 7, 15, 29, 11, tzinfo=UTC),
        dt.datetime(2018, 9, 7, 15, 29, 12, tzinfo=UTC),
    ]
    assert q["query_id"].to_list() == [59925, 59926]
    e = res.errors
    assert e["rcode_num"].to_list() == [0, 2] and e["kind"].to_list() == ["eof", "timeout"]
    assert e["ts"][0] == dt.datetime(2018, 9, 7, 0, 11, 28, tzinfo=UTC)
    assert e["upstream"][1] == "10.96.0.10:53" and e["message"][1].startswith(
        "unreachable backend: "
    )
    assert res.other["kind"].to_list() == ["banner", "banner"]


def test_go_durations_and_v1_errors(cdata: Path) -> None:
    res = read(cdata / "go_duration_004.log")
    q = res.queries
    # 981.518µs = 0.000981518 s; 4.210922ms = 0.004210922 s; 1m2.5s = 62.5 s
    assert q["duration_s"].to_list() == pytest.approx([0.000981518, 0.004210922, 62.5], rel=1e-12)
    # CoreDNS 004 lines: no port, no id, no flags
    assert q["client_port"].to_list()[:2] == [None, None] and q["rflags"].to_list()[:2] == [
        None,
        None,
    ]
    assert q["client_port"][2] == 3333 and q["query_id"][2] == 17
    e = res.errors.row(0, named=True)
    assert (e["rcode_num"], e["qname"], e["kind"]) == (2, "slow.example", "no_healthy")
    assert e["ts"] == dt.datetime(2017, 2, 6, 21, 18, 47, tzinfo=UTC)


def test_kubectl_prefix_and_timestamps(cdata: Path) -> None:
    res = read(cdata / "kubectl_prefix_timestamps.log")
    e = res.errors.row(0, named=True)
    assert (e["pod"], e["container"]) == ("coredns-5d78c9869d-x2x7k", "coredns")
    # 14:38:07.605360404-05:00 -> 19:38:07.605360 UTC (microseconds, truncated)
    assert e["ts"] == dt.datetime(2023, 8, 10, 19, 38, 7, 605360, tzinfo=UTC)
    assert res.queries["pod"].to_list() == ["coredns-5d78c9869d-x2x7k", None]
    assert res.queries["ts"][1] == dt.datetime(2023, 8, 10, 19, 38, 8, 0, tzinfo=UTC)
    assert res.queries["qname"][0] == "SUBDOMAIN.sharepoint.com"


def test_cri_file_partial_join(cdata: Path) -> None:
    res = read(cdata / "cri.log")
    q = res.queries
    # lines 3-5 are P, P, F parts of one query line
    assert q["line_no"].to_list() == [1, 3]
    assert q["qname"][1] == "joined.example" and q["duration_s"][1] == 0.25
    assert q["stream"].to_list() == ["stdout", "stdout"]
    assert res.files["joined_lines"][0] == 2 and res.files["lines"][0] == 6
    assert res.errors["ts"][0] == dt.datetime(2023, 8, 10, 19, 38, 7, 600000, tzinfo=UTC)
    assert res.other["kind"].to_list() == ["blank"]


def test_cri_16k_line_split_into_partials(tmp_path: Path) -> None:
    # containerd splits lines longer than 16 KiB into P records followed by an F record
    message = "[WARNING] plugin/kubernetes: " + "x" * 40_000
    query = '[INFO] 10.0.0.1:53 - 5 "A IN after.example. udp 30 false 512" NOERROR qr,rd 30 0.001s'
    parts = [message[i : i + 16384] for i in range(0, len(message), 16384)]
    lines = [f"2024-01-01T00:00:00.1Z stdout P {p}" for p in parts[:-1]]
    lines.append(f"2024-01-01T00:00:00.1Z stdout F {parts[-1]}")
    lines.append(f"2024-01-01T00:00:00.2Z stdout F {query}")
    path = tmp_path / "0.log"
    path.write_text("\n".join(lines) + "\n")
    for chunk in (1 << 20, 5000):  # a small chunk puts chunk ends inside the P run
        res = read(path, chunk_bytes=chunk)
        assert len(parts) == 3
        assert res.other["line_no"].to_list() == [1]
        assert res.other["message"][0] == "x" * 40_000
        assert res.queries["line_no"].to_list() == [4]
        assert res.files["joined_lines"][0] == 2


def test_docker_json_lines(cdata: Path) -> None:
    res = read(cdata / "docker_json.log", warns=True)
    e = res.errors.row(0, named=True)
    # "-\u003e" decodes to "->"
    assert e["upstream"] == "10.0.0.2:53" and e["local_addr"] == "10.0.0.5:53039"
    assert e["stream"] == "stdout" and e["ts"] == dt.datetime(
        2016, 10, 20, 18, 39, 20, 576064, tzinfo=UTC
    )
    q = res.queries.row(0, named=True)
    # a partial record ("... 0." without \n) joined with the next ("0025s\n")
    assert q["qname"] == "<y>.example" and q["duration_s"] == 0.0025 and q["line_no"] == 2
    assert res.files["joined_lines"][0] == 1
    assert res.rejected["line_no"].to_list() == [4, 5]
    assert res.rejected["reason"][1].startswith("invalid JSON line")


def test_journald_compose_stern_prefixes(cdata: Path) -> None:
    res = read(cdata / "journald_compose_stern.log")
    q = res.queries
    assert q["node"].to_list() == ["node-7", None, None]
    assert q["container"].to_list() == [None, "coredns-1", "coredns"]
    assert q["pod"].to_list() == [None, None, "coredns-7d8f-abcde"]
    e = res.errors.row(0, named=True)
    assert (e["level"], e["kind"], e["transport"], e["container"]) == (
        "WARNING",
        "reset",
        "tcp",
        "node-cache",
    )


def test_consolidate_and_error_kinds(cdata: Path) -> None:
    e = read(cdata / "consolidate.log").errors
    assert e["consolidated_count"].to_list()[:3] == [3, 12, 4]
    # 30s, 5m0s, 1h0m0s
    assert e["consolidated_period_s"].to_list()[:3] == [30.0, 300.0, 3600.0]
    assert e["level"].to_list()[:3] == ["WARNING", "ERROR", "INFO"]
    assert e["kind"].to_list() == [
        "timeout",
        "timeout",
        "other",
        "max_concurrent",
        "no_healthy",
        "overflow",
        "refused",
        "eof",
    ]
    assert e["rcode_num"].to_list()[3:5] == [5, 2]


def test_nodecache_startup_other_lines(cdata: Path) -> None:
    o = read(cdata / "nodecache_startup.log").other
    kinds = o["kind"].to_list()
    assert kinds[:3] == ["message"] * 3
    assert kinds[3:9] == ["config"] * 6  # the Corefile printed after "Using config file:"
    assert kinds[9:18] == [
        "message",
        "banner",
        "plugin",
        "banner",
        "banner",
        "maxprocs",
        "klog",
        "blank",
        "message",
    ]
    assert o.filter(pl.col("kind") == "klog")["level"].to_list() == ["ERROR"]
    # node-cache iptables lines and a plugin error that is not an errors-plugin line
    tail = o.tail(3)
    assert tail["kind"].to_list() == ["message", "message", "plugin"]
    assert tail["level"].to_list() == ["INFO", "ERROR", "ERROR"]
    assert tail["plugin"][2] == "health"
    assert tail["message"][0].startswith("Added back nodelocaldns rule")


def test_custom_log_format(cdata: Path) -> None:
    fmt = "{remote} {type} {name} {class} {size} {rcode} {duration}"
    res = read(cdata / "custom_format.log", log_format=fmt)
    q = res.queries
    assert q["line_no"].to_list() == [1, 2, 5]  # line 5 is in the default format
    assert q["client_ip"][0] == "*.*.218" and q["qname"][0] == "sts.eu-west-1.amazonaws.com"
    assert q["req_size"][0] == 56 and q["duration_s"][0] == 0.000071708 and q["proto"][0] is None
    assert res.errors["kind"].to_list() == ["refused"]
    # the same file read with the default formats only: lines 1-2 are not query lines
    plain = read(cdata / "custom_format.log")
    assert plain.queries["line_no"].to_list() == [5]
    assert plain.other.filter(pl.col("kind") == "message")["line_no"].to_list() == [1, 2]


def test_unknown_custom_format_warns_with_file_line_and_parameter(cdata: Path) -> None:
    """Issue 11: a log written with a custom ``log`` format, read without ``log_format``: the
    lines land in ``other`` as INFO messages; that must not be silent."""
    path = cdata / "unknown_custom_format.log"
    with pytest.warns(KitWarning) as rec:
        res = read_coredns_log(path)
    check_partition(res)
    msgs = [str(w.message) for w in rec if "log_format=" in str(w.message)]
    assert len(msgs) == 1
    # the file, how many of its lines, the first such line (line 2: line 1 is a reload message)
    assert str(path) in msgs[0] and "6 of 7 lines" in msgs[0]
    assert "line 2: '10.244.1.5 A api.example.com. IN 45 NOERROR 0.000734s'" in msgs[0]
    assert res.queries.height == 0 and res.other.height == 7
    assert "log_format=" in res.files["notes"][0]
    # with the Corefile's format: six queries, no warning
    fmt = "{remote} {type} {name} {class} {size} {rcode} {duration}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", KitWarning)
        good = read_coredns_log(path, log_format=fmt)
    assert good.queries.height == 6 and good.queries["rcode"][2] == "SERVFAIL"
    assert good.files["notes"][0] is None
    # dnskit summarize shows the note next to "queries: 0"
    with pytest.warns(KitWarning):
        s = summarize_file(path)["summary"]
    assert s["queries"] == 0 and any("log_format=" in n for n in s["notes"])


@pytest.mark.parametrize(
    "name", ["custom_format.log", "default_modern.log", "nodecache_startup.log"]
)
def test_no_unknown_format_warning_on_known_or_mixed_logs(cdata: Path, name: str) -> None:
    """custom_format.log has 2 custom lines of 5 (not most); the others are default formats."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        read_coredns_log(cdata / name)
    assert not [w for w in rec if "log_format=" in str(w.message)]


def test_no_unknown_format_warning_on_real_logs(real_logs: list[Path]) -> None:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for path in real_logs:
            read_coredns_log(path)
    assert not [w for w in rec if "log_format=" in str(w.message)]


def test_common_and_combined_macros(cdata: Path) -> None:
    base = read(cdata / "default_modern.log").queries
    for fmt in ("{common}", '"{combined}"'):
        assert_frame_equal(read(cdata / "default_modern.log", log_format=fmt).queries, base)


def test_bad_log_format() -> None:
    with pytest.raises(InputFormatError, match="has no placeholder"):
        read_coredns_log("x", log_format="just text")
    with pytest.raises(InputFormatError, match="non-empty"):
        read_coredns_log("x", log_format="  ")


# --- bad input ----------------------------------------------------------------------------------


def test_rejects_are_counted_with_reasons(cdata: Path) -> None:
    res = read(cdata / "rejects.log", warns=True)
    assert res.rejected["line_no"].to_list() == [1, 2, 3, 4, 5, 7]
    reasons = res.rejected["reason"].to_list()
    assert reasons[5] == "query line does not match any CoreDNS log format"  # trailing junk
    assert reasons[:3] == ["query line does not match any CoreDNS log format"] * 3
    assert reasons[3] == "errors-plugin line does not parse"
    assert reasons[4] == "not a CoreDNS log line the kit recognises"
    assert res.queries["line_no"].to_list() == [6]


def test_strict_raises_at_first_rejected_line(cdata: Path) -> None:
    with pytest.raises(InputFormatError) as info:
        read_coredns_log(cdata / "rejects.log", strict=True)
    err = info.value
    assert err.line == 1 and err.path is not None and err.path.endswith("rejects.log")
    assert str(err).startswith(f"{err.path}:1: query line does not match any CoreDNS log format")
    assert "strict=False" in str(err)
    with pytest.raises(InputFormatError) as info:
        read_coredns_log(cdata / "docker_json.log", strict=True)
    assert info.value.line == 4
    # a clean file passes in strict mode
    assert read_coredns_log(cdata / "default_modern.log", strict=True).queries.height == 8


def test_empty_file(cdata: Path) -> None:
    res = read(cdata / "empty.log")
    assert res.records == 0 and res.lines_read == 0 and res.files["lines"][0] == 0
    for name in FRAMES:
        assert getattr(res, name).is_empty()


def test_crlf_and_missing_final_newline(cdata: Path) -> None:
    q = read(cdata / "crlf_no_trailing_newline.log").queries
    assert q["qname"].to_list() == ["crlf.example", "last.example"]
    assert q["duration_s"].to_list() == [0.1, 0.2]


def test_non_utf8_bytes_replaced_and_counted(cdata: Path) -> None:
    res = read(cdata / "non_utf8.log")
    assert res.files["invalid_utf8"][0] == 2  # \xff\xfe
    assert "2 invalid UTF-8 byte(s)" in res.files["notes"][0]
    assert res.other["message"][0] == "bad \ufffd\ufffd bytes"
    assert res.queries["qname"].to_list() == ["ok.example", "bäd.example"]


def test_binary_file(shared_fixtures: Path) -> None:
    pcap = shared_fixtures / "pcaps" / "dnscap_dns.pcap"
    with pytest.raises(InputFormatError) as info:
        read_coredns_log(pcap, strict=True)
    assert info.value.offset == 0 and "binary" in str(info.value)
    with pytest.warns(KitWarning, match="skipped"):
        res = read_coredns_log(pcap)
    assert res.files["skipped"][0] is True and res.records == 0


def test_gzip_and_truncated_gzip(cdata: Path, tmp_path: Path) -> None:
    src = cdata / "default_modern.log"
    gz = tmp_path / "q.log.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    base = read(src).queries.drop("source")
    res = read(gz)
    assert res.files["gzipped"][0] is True
    assert_frame_equal(res.queries.drop("source"), base)
    blob = gzip.compress(src.read_bytes() * 50)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = read_coredns_log(cut)
    texts = [str(w.message) for w in caught if issubclass(w.category, KitWarning)]
    assert any("truncated gzip" in t for t in texts), texts
    check_partition(res)
    assert "truncated gzip" in res.files["notes"][0]
    # what was decompressed is accounted line by line; the cut line may be rejected, not lost
    assert 0 < res.lines_read < 400 and res.queries.height >= res.lines_read - 1


def test_sources_dir_glob_list(cdata: Path) -> None:
    one = read_coredns_log([cdata / "cri.log", cdata / "consolidate.log"])
    assert one.files["source"].to_list() == [str(cdata / "cri.log"), str(cdata / "consolidate.log")]
    assert one.errors.height == 1 + 8
    with pytest.warns(KitWarning):
        whole = read_coredns_log(cdata)
    check_partition(whole)
    assert whole.files.height == len(list(cdata.iterdir()))
    assert read_coredns_log(str(cdata / "c*.log")).files.height == 4
    with pytest.raises(FileNotFoundError):
        read_coredns_log(cdata / "missing.log")


@pytest.mark.parametrize("batch_rows", [1, 7, None])
def test_chunking_does_not_change_results(
    cdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int | None
) -> None:
    # lines the fast path leaves are parsed in batches gathered over several blocks; whatever
    # the batch size, the frames (and their line order) equal a one-block read
    names = [
        "default_modern",
        "cri",
        "docker_json",
        "nodecache_startup",
        "rejects",
        "kubectl_prefix_timestamps",
    ]
    path = tmp_path / "all.log"
    path.write_bytes(b"".join((cdata / f"{n}.log").read_bytes() for n in names))
    with pytest.warns(KitWarning):
        big = read_coredns_log(path)
    if batch_rows is not None:
        monkeypatch.setattr(coredns_reader, "_GENERAL_BATCH_ROWS", batch_rows)
    with pytest.warns(KitWarning):
        small = read_coredns_log(path, chunk_bytes=100)
    # the mix has fast-path queries and general-path ones (escaped names, wrappers) interleaved
    assert big.queries.height > 10 and big.errors.height and big.other.height
    for name in FRAMES:
        assert_frame_equal(getattr(small, name), getattr(big, name))
        assert getattr(small, name)["line_no"].is_sorted()
    assert_frame_equal(small.files.drop("notes"), big.files.drop("notes"))


# --- conformance over the real files ---------------------------------------------------------------

# An independent reading of query-log lines: the quoted request section, then rcode ... duration.
QUERY_RE = re.compile(
    r'"(?P<type>[A-Z0-9]+) (?P<class>[A-Z0-9]+) (?P<name>\S+) (?:udp|tcp) \d+ (?:true|false) \d+" '
    r"(?P<rcode>\S+) (?:\S* )?\d+ (?P<dur>[0-9.]+)(?P<unit>s|ms|µs)(?: \"\d+\")?\s*$"
)
ERROR_RE = re.compile(r"\[(?:ERROR|WARNING|INFO|DEBUG)\] (?:plugin/errors: )?\d+ ")


def logical_lines(path: Path) -> list[str]:
    """The lines of a real file, JSON-decoded when they are JSON objects."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            line = (obj.get("log") or obj.get("message")).rstrip("\n")
        out.append(line)
    return out


def test_real_files_every_line_accounted_no_rejects(real_logs: list[Path]) -> None:
    assert len(real_logs) == 9
    res = read_coredns_log(real_logs)
    check_partition(res)
    assert res.rejected.is_empty(), res.rejected
    per_file = dict(zip(res.files["source"], res.files["lines"], strict=True))
    for path in real_logs:
        assert per_file[str(path)] == physical_lines(path)


def test_real_files_queries_match_independent_reading(real_logs: list[Path]) -> None:
    res = read_coredns_log(real_logs)
    checked = 0
    for path in real_logs:
        lines = logical_lines(path)
        q = res.queries.filter(pl.col("source") == str(path))
        want = {}
        for i, line in enumerate(lines, start=1):
            m = QUERY_RE.search(line)
            if m:
                scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}[m["unit"]]
                rcode = None if m["rcode"] == "-" else m["rcode"]
                want[i] = (rcode, float(m["dur"]) * scale, m["type"], m["name"].removesuffix("."))
        got = {
            r["line_no"]: (r["rcode"], r["duration_s"], r["qtype"], r["qname"])
            for r in q.iter_rows(named=True)
        }
        assert got.keys() == want.keys(), path.name
        for k, (rc, d, t, n) in want.items():
            assert got[k][0] == rc and got[k][2] == t and got[k][3] == n, (path.name, k)
            assert got[k][1] == pytest.approx(d, rel=1e-12), (path.name, k)
            checked += 1
    assert checked == 39  # 1+1 readme, 3+2 beats, 3+9 integrations, 19 querylog excerpt, 1 k8s page


def test_real_files_errors_match_independent_reading(real_logs: list[Path]) -> None:
    res = read_coredns_log(real_logs)
    for path in real_logs:
        lines = logical_lines(path)
        want = {i for i, line in enumerate(lines, start=1) if ERROR_RE.search(line)}
        got = set(res.errors.filter(pl.col("source") == str(path))["line_no"].to_list())
        assert got == want, path.name
    e = res.errors
    # errors-plugin lines with a Go net.OpError: upstream is the text between "->"/"tcp " and ": "
    for r in e.filter(pl.col("upstream").is_not_null()).iter_rows(named=True):
        m = re.search(r"(?:udp|tcp) (?:\S+->)?(\S+): ", r["message"])
        assert m is not None and m.group(1) == r["upstream"]
    assert e["consolidated_count"].drop_nulls().to_list() == [3, 4, 4, 4, 4]
    hinfo = sum(line.count(" HINFO: ") for p in real_logs for line in logical_lines(p))
    assert e.filter(pl.col("qtype") == "HINFO").height == hinfo == 16


def test_real_files_other_lines(real_logs: list[Path]) -> None:
    o = read_coredns_log(real_logs).other
    assert o.filter(pl.col("kind") == "klog").height == 2
    assert o.filter(pl.col("kind") == "klog")["level"].unique().to_list() == ["ERROR"]
    banners = o.filter(pl.col("kind") == "banner")["message"].to_list()
    assert "CoreDNS-1.14.0" in banners and "darwin/amd64, go1.16," in banners
    compose = o.filter(pl.col("container") == "coredns-1")
    assert compose.height == 5  # maxprocs, .:53, reload, version, platform


WRAPPERS = {
    "cri": lambda i, s: f"2024-05-01T10:00:{i % 60:02d}.{i:09d}Z stdout F {s}",
    "kubectl_ts": lambda i, s: f"2024-05-01T12:00:{i % 60:02d}.{i:09d}+02:00 {s}",
    "kubectl_prefix": lambda i, s: (
        f"[pod/coredns-1/coredns] 2024-05-01T10:00:{i % 60:02d}.{i:09d}Z {s}"
    ),
    "docker": lambda i, s: json.dumps(
        {"log": s + "\n", "stream": "stdout", "time": f"2024-05-01T10:00:{i % 60:02d}.{i}Z"}
    ).replace(">", "\\u003e"),
    "journald": lambda i, s: f"May  1 10:00:{i % 60:02d} ip-10-0-0-1 coredns[42]: {s}",
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_wrappers_do_not_change_parsing(
    wrapper: str, real_logs: list[Path], tmp_path: Path
) -> None:
    """Each real line, wrapped by a runtime or collector, parses as the bare line does."""
    text_files = [p for p in real_logs if "json" not in p.name]
    raw_lines = [line for p in text_files for line in p.read_text().splitlines()]
    bare = tmp_path / "bare.log"
    bare.write_text("\n".join(raw_lines) + "\n")
    wrapped = tmp_path / "wrapped.log"
    wrapped.write_text(
        "\n".join(WRAPPERS[wrapper](i, s) for i, s in enumerate(raw_lines, 1)) + "\n"
    )
    a = read_coredns_log(bare)
    b = read_coredns_log(wrapped)
    check_partition(b)
    assert b.rejected.is_empty()
    drop = ["ts", "source", "pod", "container", "node", "stream"]
    for name in ("queries", "errors", "other"):
        fa, fb = getattr(a, name), getattr(b, name)
        if wrapper == "kubectl_prefix":
            assert set(fb["pod"].unique().to_list()) == {"coredns-1"}
        # bare lines with their own CoreDNS/Go stamps keep them; the others take the wrapper's
        if wrapper != "journald":
            assert fb.filter(pl.col("ts").is_null()).is_empty()
        assert_frame_equal(fa.drop(drop), fb.drop(drop))
    own = a.queries.filter(pl.col("ts").is_not_null())["line_no"].to_list()
    assert_frame_equal(
        a.queries.filter(pl.col("line_no").is_in(own)).select("line_no", "ts"),
        b.queries.filter(pl.col("line_no").is_in(own)).select("line_no", "ts"),
    )


# --- helpers ----------------------------------------------------------------------------------------


def test_error_counts_per_minute(tmp_path: Path) -> None:
    lines = [
        "2024-05-01T10:00:01Z [ERROR] plugin/errors: 2 a. A: dial tcp 10.0.0.2:53: i/o timeout",
        "2024-05-01T10:00:59Z [ERROR] plugin/errors: 2 b. A: dial tcp 10.0.0.2:53: i/o timeout",
        "2024-05-01T10:00:30Z [ERROR] plugin/errors: 2 c. A: read udp 10.0.0.9:999->10.0.0.3:53: i/o timeout",
        "2024-05-01T10:02:00Z [ERROR] plugin/errors: 2 d. A: dial tcp 10.0.0.2:53: i/o timeout",
        "2024-05-01T10:02:10Z [WARNING] plugin/errors: 7 errors like '^dial tcp' occurred in last 30s",
    ]
    path = tmp_path / "e.log"
    path.write_text("\n".join(lines) + "\n")
    res = read_coredns_log(path)
    counts = error_counts(res)
    tcp = counts.filter(pl.col("upstream") == "10.0.0.2:53")
    # minute 10:00 has a. and b.; 10:01 none; 10:02 has d.
    assert tcp["count"].to_list() == [2, 0, 1]
    udp = counts.filter(pl.col("upstream") == "10.0.0.3:53")
    assert udp["count"].to_list() == [1, 0, 0] and udp["transport"][0] == "udp"
    # all upstreams together: 10:00 a. b. c.; 10:01 none; 10:02 d. plus the 7 consolidated
    with_cons = error_counts(res.errors, by=[], include_consolidated=True)
    assert with_cons["count"].to_list() == [3, 0, 1 + 7]
    assert error_counts(res.errors, by=[])["count"].to_list() == [3, 0, 1]
    with pytest.raises(KeyError):
        error_counts(res, by=["nope"])


def test_slow_queries_and_latency(cdata: Path) -> None:
    res = read(cdata / "default_modern.log")
    slow = slow_queries(res, threshold_s=1.0)
    # 12.25 s, 6.010923182 s, 5.000450902 s, 1 s (inclusive)
    assert slow["duration_s"].to_list() == [12.25, 6.010923182, 5.000450902, 1.0]
    assert slow_queries(res.queries, 100).is_empty()
    with pytest.raises(ValueError):
        slow_queries(res, -1)
    lat = query_latency(res, by=["proto"])
    udp = lat.filter(pl.col("proto") == "udp").row(0, named=True)
    # 7 udp durations sorted: 0.000123 0.037990251 0.5 1 5.000450902 6.010923182 12.25
    assert udp["n"] == 7 and udp["p50_s"] == 1.0 and udp["max_s"] == 12.25
    assert query_latency(res, by=[])["n"][0] == 8
    assert set(query_latency(res, by=["qtype", "rcode", "client_ip"]).columns) >= {
        "qtype",
        "rcode",
        "client_ip",
        "p99_s",
    }


def test_corefile_dump_across_blocks_strict(cdata: Path) -> None:
    """The Corefile printed by node-cache is recognised even when it straddles two blocks."""
    path = cdata / "nodecache_startup.log"
    whole = read_coredns_log(path, strict=True)
    small = read_coredns_log(path, strict=True, chunk_bytes=150)
    assert_frame_equal(small.other, whole.other)
    assert small.other.filter(pl.col("kind") == "config")["line_no"].to_list() == list(range(4, 10))


def test_hostile_bytes_are_accounted(tmp_path: Path) -> None:
    """Random bytes mixed into real-looking lines: no crash, every line in exactly one frame."""
    import random

    rnd = random.Random(7)
    good = '[INFO] 10.0.0.1:53 - 1 "A IN ok.example. udp 30 false 512" NOERROR qr 30 0.1s'
    alphabet = b' "\\<>&{}[]:-\x00\x01\x7f\xff\xfe\xc3\t\r' + b"abcINFO0123456789"
    lines = []
    for i in range(400):
        if i % 4 == 0:
            lines.append(good.encode())
        else:
            base = bytearray(good.encode())
            for _ in range(rnd.randrange(1, 6)):
                base[rnd.randrange(len(base))] = rnd.choice(alphabet)
            lines.append(bytes(base))
    path = tmp_path / "hostile.log"
    path.write_bytes(b"\n".join(lines))
    with pytest.warns(KitWarning):
        res = read_coredns_log(path)
    check_partition(res)
    assert res.lines_read == 400
    # the untouched lines are queries; whatever parsed has the documented types
    assert set(range(1, 401, 4)) <= set(res.queries["line_no"].to_list())
    assert res.queries["duration_s"].is_not_null().all()
    with pytest.raises(InputFormatError) as info:
        read_coredns_log(path, strict=True)
    assert info.value.line == res.rejected["line_no"].min()


def test_pod_and_container_from_kubelet_paths(cdata: Path, tmp_path: Path) -> None:
    pods = tmp_path / "var/log/pods/kube-system_node-local-dns-x7k2p_0f1e2d3c-aaaa/node-cache"
    pods.mkdir(parents=True)
    (pods / "0.log").write_bytes((cdata / "cri.log").read_bytes())
    res = read_coredns_log(pods / "0.log")
    assert set(res.queries["pod"].to_list()) == {"node-local-dns-x7k2p"}
    assert set(res.errors["container"].to_list()) == {"node-cache"}
    cont = tmp_path / "var/log/containers"
    cont.mkdir(parents=True)
    name = "coredns-5d78c9869d-x2x7k_kube-system_coredns-" + "ab" * 32 + ".log"
    (cont / name).write_bytes((cdata / "cri.log").read_bytes())
    res = read_coredns_log(cont / name)
    assert set(res.queries["pod"].to_list()) == {"coredns-5d78c9869d-x2x7k"}
    assert set(res.queries["container"].to_list()) == {"coredns"}
    # a wrapper's own pod name wins over the path
    (pods / "1.log").write_bytes((cdata / "kubectl_prefix_timestamps.log").read_bytes())
    res = read_coredns_log(pods / "1.log")
    assert res.queries["pod"].to_list() == ["coredns-5d78c9869d-x2x7k", "node-local-dns-x7k2p"]


def test_log_format_from_read_corefile(cdata: Path) -> None:
    """The format string kit.read_corefile extracts is accepted as log_format as is."""
    custom = kit.read_corefile(
        '. {\n    log . "{remote} {type} {name} {class} {size} {rcode} {duration}"\n'
        "    forward . 8.8.8.8\n}\n"
    ).log_format(".")
    direct = read_coredns_log(
        cdata / "custom_format.log",
        log_format="{remote} {type} {name} {class} {size} {rcode} {duration}",
    )
    via = read_coredns_log(cdata / "custom_format.log", log_format=custom)
    assert_frame_equal(via.queries, direct.queries)
    plain = kit.read_corefile(".:53 {\n    log\n    forward . 8.8.8.8\n}\n").log_format(".")
    base = read_coredns_log(cdata / "default_modern.log")
    assert_frame_equal(
        read_coredns_log(cdata / "default_modern.log", log_format=plain).queries, base.queries
    )


def test_cri_final_part_that_looks_like_a_query(tmp_path: Path) -> None:
    """The F record closing a P run is a tail, even when it reads like a whole query line."""
    q = '[INFO] 10.0.0.1:53 - 1 "A IN a.example. udp 30 false 512" NOERROR qr 30 0.1s'
    path = tmp_path / "0.log"
    path.write_text(
        "\n".join(
            [
                f"2024-01-01T00:00:00Z stdout F {q}",
                "2024-01-01T00:00:01Z stdout P [INFO] plugin/kubernetes: cut here ",
                f"2024-01-01T00:00:01Z stdout F {q}",
                f"2024-01-01T00:00:02Z stdout F {q}",
            ]
        )
        + "\n"
    )
    res = read(path)
    assert res.queries["line_no"].to_list() == [1, 4]
    assert res.other["line_no"].to_list() == [2] and res.files["joined_lines"][0] == 1
    assert res.other["message"][0] == "cut here " + q


def test_without_loop_probes(real_logs: list[Path]) -> None:
    from kit.sources.coredns import without_loop_probes

    res = read_coredns_log(real_logs)
    kept = without_loop_probes(res.errors)
    # every HINFO error in the real files is a loop probe for "<digits>.<digits>." (16 of them)
    assert res.errors.height - kept.height == 16
    assert kept.filter(pl.col("qtype") == "HINFO").is_empty()
    assert kept["consolidated_count"].drop_nulls().len() == 5  # summaries kept
    assert without_loop_probes(res).height == res.queries.height  # no probes among the queries


def test_json_fast_decode_matches_line_by_line(shared_fixtures: Path, tmp_path: Path) -> None:
    """Well-formed JSON blocks are decoded by polars; one bad line sends the block to json.loads.

    Both paths must give the same rows.
    """
    logs = shared_fixtures / "logs"
    good = b"".join(
        (logs / n).read_bytes().rstrip(b"\n") + b"\n"
        for n in ("elastic_beats_coredns-json.log", "elastic_integrations_test-coredns-json.log")
    )
    a_path, b_path = tmp_path / "a.log", tmp_path / "b.log"
    a_path.write_bytes(good)
    b_path.write_bytes(good + b'{"log": 5}\n')
    a = read(a_path)
    b = read(b_path, warns=True)
    assert a.queries.height == 6 and b.rejected["line_no"].to_list() == [7]
    assert_frame_equal(a.queries.drop("source"), b.queries.drop("source"))
    assert set(a.queries["pod"].to_list()) == {"coredns-86c58d9df4-jwhsg"}
    assert set(a.queries["node"].to_list()) == {"minikube"}


@pytest.mark.parametrize("wrapper", ["cri", "kubectl_ts"])
def test_stamped_era_inside_wrappers(wrapper: str, real_logs: list[Path], tmp_path: Path) -> None:
    """CoreDNS 1.2.6-1.6.2 lines (own stamp) under a CRI or kubectl stamp keep CoreDNS' stamp."""
    src = next(p for p in real_logs if p.name == "github_issue_excerpts_querylog.log")
    own = [line for line in src.read_text().splitlines() if line.startswith("20")]
    assert len(own) == 13
    bare = tmp_path / "bare.log"
    bare.write_text("\n".join(own * 20) + "\n")
    wrapped = tmp_path / "wrapped.log"
    wrapped.write_text("\n".join(WRAPPERS[wrapper](i, s) for i, s in enumerate(own * 20, 1)) + "\n")
    a, b = read(bare), read(wrapped)
    assert b.queries.height == a.queries.height == 260
    drop = ["source", "pod", "container", "node", "stream"]
    assert_frame_equal(a.queries.drop(drop), b.queries.drop(drop))
    assert b.queries["stream"].unique().to_list() == (["stdout"] if wrapper == "cri" else [None])


# --- lines too long to be CoreDNS lines ------------------------------------------------------------

QUERY_LINE = '[INFO] 10.0.0.1:53 - 5 "A IN a.example. udp 30 false 512" NOERROR qr,rd 30 0.001s'


@pytest.mark.parametrize("chunk", [1 << 24, 4000])
@pytest.mark.parametrize("unit", [b"a", b"\xff", b" ", b"{", b"[INFO] "])
def test_long_lines_are_counted_rejects(tmp_path: Path, chunk: int, unit: bytes) -> None:
    """A line over MAX_LINE_BYTES is rejected with its number, length and a short excerpt, in any
    block size; the lines around it read as without it (a 10 MB line used to go through every
    parsing step, 16-65x its size in memory, and a 10 MB query name was taken as a query)."""
    from kit.sources.coredns import LONG_LINE_REASON, MAX_LINE_BYTES

    q = QUERY_LINE.encode()
    long_query = QUERY_LINE.replace("a.example", "b" * MAX_LINE_BYTES).encode()
    exact = b"[INFO] plugin/reload: " + b"x" * (MAX_LINE_BYTES - 22)
    assert len(exact) == MAX_LINE_BYTES
    body = [q, unit * (200_000 // len(unit)), q, long_query, exact + b"\r", q]
    path = tmp_path / "long.log"
    path.write_bytes(b"\n".join(body) + b"\n" + unit * 70_000)  # the last one unterminated
    res = read(path, chunk_bytes=chunk, warns=True)
    assert res.lines_read == 7
    assert res.rejected["line_no"].to_list() == [2, 4, 7]
    assert res.rejected["reason"].to_list() == [LONG_LINE_REASON] * 3
    sizes = [200_000 // len(unit) * len(unit), len(long_query), 70_000 * len(unit)]
    for line, size in zip(res.rejected["line"], sizes, strict=True):
        assert line.endswith(f"... ({size:,} bytes)") and len(line) < 260
    assert res.queries["line_no"].to_list() == [1, 3, 6]
    assert res.other["line_no"].to_list() == [5]  # exactly MAX_LINE_BYTES (and a CR): kept
    assert res.other["message"][0] == "x" * (MAX_LINE_BYTES - 22)
    with pytest.raises(InputFormatError) as info:
        read_coredns_log(path, strict=True, chunk_bytes=chunk)
    assert info.value.line == 2 and "longer than 65,536 bytes" in str(info.value)


def test_long_line_cut_keeps_gzip_and_line_numbers(tmp_path: Path) -> None:
    import gzip

    q = QUERY_LINE.encode()
    data = b"\n".join([q] * 3 + [b"z" * 1_000_000] + [q] * 3) + b"\n"
    path = tmp_path / "long.log.gz"
    path.write_bytes(gzip.compress(data))
    res = read(path, warns=True)
    assert res.rejected["line_no"].to_list() == [4]
    assert res.queries["line_no"].to_list() == [1, 2, 3, 5, 6, 7]
