"""kit.sources.unbound: unbound logs (both timestamp styles) and forward settings of unbound.conf.

Real files: tests/data/unbound/real-*.log were written by unbound 1.17.1 (the lab's node cache,
``[epoch]`` style; and a loopback unbound with ``log-time-ascii`` and ``log-tag-queryreply``).
Hand-made edge cases: edge-bad-lines.log, ascii-new-year.log. Expected values are derived in the
comments from the file text (or cross-checked against unbound's own tools), not copied from the
loader's output.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from conftest import require_tool

import kit
from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema
from kit.sources.unbound import (
    FORWARD_SCHEMA,
    OTHER_SCHEMA,
    QUERIES_SCHEMA,
    RECEIVED_SCHEMA,
    REJECTED_SCHEMA,
    read_unbound_conf,
    read_unbound_log,
)

UTC = dt.UTC


@pytest.fixture(scope="module")
def ub(data_dir: Path) -> Path:
    return data_dir / "unbound"


def _frames(res: kit.ResolverLog) -> list[pl.DataFrame]:
    return [res.queries, res.received, res.other, res.rejected]


def test_public_api_and_schemas_documented() -> None:
    assert kit.read_unbound_log is read_unbound_log
    assert kit.read_unbound_conf is read_unbound_conf
    doc = read_unbound_log.__doc__ or ""
    for schema in (QUERIES_SCHEMA, RECEIVED_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA):
        for col in schema:
            assert f"``{col}``" in doc, col
    cdoc = read_unbound_conf.__doc__ or ""
    for col in FORWARD_SCHEMA:
        assert f"``{col}``" in cdoc, col


def test_forward_schema_is_the_corefile_one() -> None:
    corefile = pytest.importorskip("kit.sources.corefile")
    assert FORWARD_SCHEMA == corefile.FORWARD_SCHEMA


def test_real_lab_log_epoch(ub: Path) -> None:
    path = ub / "real-lab-epoch.log"
    text = path.read_text()
    lines = text.splitlines()
    res = read_unbound_log(path)
    for f, s in zip(
        _frames(res), (QUERIES_SCHEMA, RECEIVED_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA), strict=True
    ):
        check_schema(f, s)
    # every line accounted for, none rejected
    assert res.lines == len(lines) == sum(f.height for f in _frames(res)) == res.records
    assert res.rejected.height == 0
    # independent count: reply lines end in "<sec>.<6 digits> <0|1> <size>"
    reply_re = re.compile(r"info: \S+ \S+ \S+ \S+ \S+ \d+\.\d{6} [01] \d+$")
    query_re = re.compile(r"info: [0-9.]+ \S+ [A-Z0-9]+ [A-Z]+$")
    assert res.queries.height == sum(bool(reply_re.search(ln)) for ln in lines)
    assert res.received.height == sum(bool(query_re.search(ln)) for ln in lines)
    # sum of durations equals the sum of the 6th field of those lines (awk-style)
    want = sum(float(ln.split()[-3]) for ln in lines if reply_re.search(ln))
    assert res.queries["duration_s"].sum() == pytest.approx(want, abs=1e-9)
    # first reply: line 4 "[1795671300] ... 169.254.1.1 svc22.hit.test. A IN NOERROR 0.000395 0 48"
    row = res.queries.row(0, named=True)
    assert row["line_no"] == 4
    assert row["ts"] == dt.datetime.fromtimestamp(1795671300, UTC)
    assert (row["client_ip"], row["qname"], row["qtype"], row["qclass"], row["rcode"]) == (
        "169.254.1.1",
        "svc22.hit.test",
        "A",
        "IN",
        "NOERROR",
    )
    assert row["duration_s"] == pytest.approx(0.000395)
    assert row["cached"] is False and row["resp_size"] == 48
    # the statistics unbound prints at exit are kept in .other, not mistaken for queries
    assert res.other.filter(pl.col("message").str.starts_with("server stats")).height == 2
    assert set(res.other["level"]) == {"notice", "info"}


def test_real_ascii_tagged_log(ub: Path) -> None:
    path = ub / "real-ascii-tagged.log"
    res = read_unbound_log(path, year=2026)
    lines = path.read_text().splitlines()
    assert res.lines == len(lines) == sum(f.height for f in _frames(res))
    # log-tag-queryreply: one "query:" and one "reply:" line per dig query (7 digs)
    assert res.received.height == sum(" query: " in ln for ln in lines) == 7
    assert res.queries.height == sum(" reply: " in ln for ln in lines) == 7
    # "Nov 26 05:36:02" with year=2026, machine TZ was UTC
    assert res.queries["ts"][0] == dt.datetime(2026, 11, 26, 5, 36, 2, tzinfo=UTC)
    names = res.queries["qname"].to_list()
    assert "Mixed.CASE.test" in names  # case as the client sent it (dig Mixed.CASE.test)
    assert "." in names  # root stays "."
    assert "we?ird??x?.test" in names  # unbound printed space, quote, < and > as '?'
    by_name = {r["qname"] + "/" + r["qtype"]: r for r in res.queries.iter_rows(named=True)}
    assert by_name["./NS"]["rcode"] == "SERVFAIL" and by_name["./NS"][
        "duration_s"
    ] == pytest.approx(0.004526)
    assert by_name["a.test/AAAA"]["qclass"] == "CH"
    assert by_name["a.test/HTTPS"]["qtype"] == "HTTPS"


def test_edge_cases_counted(ub: Path) -> None:
    path = ub / "edge-bad-lines.log"
    with pytest.warns(
        KitWarning, match=r"3 of 9 unbound log lines rejected \(first: .*:3, blank line\)"
    ):
        res = read_unbound_log(path)
    # 9 lines: 1 query line, 3 replies (lines 2, 6 with CRLF, 8 with invalid UTF-8), 2 other
    # (error; an info line whose "client" 999.1.1.1 is no IP), 3 rejected (blank, junk, bad reply:)
    assert res.lines == 9
    assert res.queries["line_no"].to_list() == [2, 6, 8]
    assert res.received["line_no"].to_list() == [1]
    assert res.other["line_no"].to_list() == [7, 9]
    assert res.rejected["line_no"].to_list() == [3, 4, 5]
    assert res.rejected["reason"].to_list() == [
        "blank line",
        "not an unbound log line",
        "malformed reply line",
    ]
    v6 = res.queries.row(1, named=True)
    assert v6["client_ip"] == "2001:db8::1" and v6["resp_size"] == 60  # CR stripped
    assert v6["duration_s"] == pytest.approx(1.002)
    assert res.queries["qname"][2] == "b\ufffd\ufffd.test"  # bytes 0xff 0xfe made visible
    assert res.other.row(0, named=True)["level"] == "error"


def test_strict_raises_with_location(ub: Path) -> None:
    path = ub / "edge-bad-lines.log"
    with pytest.raises(InputFormatError) as ei:
        read_unbound_log(path, strict=True)
    err = ei.value
    assert err.line == 3 and err.path == str(path)
    assert str(err).startswith(
        f"{path}:3: blank line: expected '[epoch] unbound[pid:tid] level: message'"
    )


def test_ascii_year_rollover_and_bad_dates(ub: Path) -> None:
    path = ub / "ascii-new-year.log"
    with pytest.warns(KitWarning, match="1 of 4"):
        res = read_unbound_log(path, year=2025)
    assert res.queries["ts"].to_list() == [
        dt.datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC),
        dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]
    assert res.rejected["line_no"].to_list() == [4]  # "Feb 30" is no date


def test_ascii_year_from_mtime_and_tz(ub: Path, tmp_path: Path) -> None:
    path = tmp_path / "u.log"
    shutil.copy(ub / "ascii-new-year.log", path)
    # file last written on 2030-01-01 12:00 UTC: the last line (Jan 1) is 2030, so Dec 31 is 2029
    stamp = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    with pytest.warns(KitWarning):
        res = read_unbound_log(path)
    assert [t.year for t in res.queries["ts"]] == [2029, 2029, 2030]
    # the same wall-clock times in Europe/Berlin (UTC+1 in winter) are one hour earlier in UTC
    with pytest.warns(KitWarning):
        res2 = read_unbound_log(path, year=2025, tz="Europe/Berlin")
    assert res2.queries["ts"][0] == dt.datetime(2025, 12, 31, 22, 59, 58, tzinfo=UTC)


def test_gzip_and_directory(ub: Path, tmp_path: Path) -> None:
    import gzip

    src = (ub / "real-lab-epoch.log").read_bytes()
    (tmp_path / "a.log.gz").write_bytes(gzip.compress(src))
    (tmp_path / "b.log").write_bytes(src)
    (tmp_path / "ignored.txt").write_text("not a log")
    res = read_unbound_log(tmp_path)
    one = read_unbound_log(ub / "real-lab-epoch.log")
    assert res.queries.height == 2 * one.queries.height
    assert res.queries["source"].n_unique() == 2


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.log"
    p.write_text("")
    res = read_unbound_log(p)
    assert res.lines == 0 and all(f.height == 0 for f in _frames(res))
    check_schema(res.queries, QUERIES_SCHEMA)


# ----- unbound.conf -------------------------------------------------------------------------

CONF = """\
# hand-made: two forward zones, per-zone TCP, IPv6 with port, TLS with a name
server:
    port: 5353
    interface: 127.0.0.1   # comment after a value
forward-zone:
    name: "cluster.local."
    forward-addr: 10.96.0.10
    forward-addr: fd00::10@5300
    forward-tcp-upstream: yes
forward-zone:
    name: "."
    forward-tls-upstream: yes
    forward-addr: 1.1.1.1@853#cloudflare-dns.com
    forward-host: "dns.example"
"""


def test_conf_text_forward_rows() -> None:
    df = read_unbound_conf(CONF)
    check_schema(df, FORWARD_SCHEMA)
    assert df.select("zone", "port", "upstream", "transport", "force_tcp", "line_no").rows() == [
        ("cluster.local", 5353, "10.96.0.10:53", "tcp", True, 7),
        ("cluster.local", 5353, "[fd00::10]:5300", "tcp", True, 8),
        (".", 5353, "1.1.1.1:853", "tls", False, 13),
        (".", 5353, "dns.example:853", "tls", False, 14),
    ]
    assert set(df["resolver"]) == {"unbound"} and set(df["source"]) == {"<text>"}
    assert df["prefer_udp"].to_list() == [False] * 4
    assert df["policy"].null_count() == 4


def test_conf_include_and_errors(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "fwd.conf").write_text(
        'forward-zone:\n  name: "."\n  forward-addr: 169.254.169.253\n'
    )
    main = tmp_path / "unbound.conf"
    main.write_text('server:\n  tcp-upstream: yes\ninclude: "conf.d/*.conf"\n')
    df = read_unbound_conf(main)
    assert df.select("upstream", "force_tcp", "transport", "line_no").rows() == [
        ("169.254.169.253:53", True, "tcp", 3)
    ]
    assert df["source"][0].endswith("fwd.conf")
    with pytest.raises(InputFormatError, match=r"<text>:2: expected 'key: value'"):
        read_unbound_conf("server:\n  this line has no colon\n")
    with pytest.raises(InputFormatError, match="forward-tcp-upstream: expected yes or no"):
        read_unbound_conf(
            'forward-zone:\n name: "."\n forward-addr: 1.2.3.4\n forward-tcp-upstream: maybe\n'
        )
    with pytest.raises(FileNotFoundError):
        read_unbound_conf(tmp_path / "missing.conf")


@pytest.mark.parametrize("tcp", [False, True])
def test_conf_matches_unbound_checkconf(tmp_path: Path, tcp: bool) -> None:
    """unbound's own parser (unbound-checkconf -o) agrees on tcp-upstream and the forward address."""
    checkconf = require_tool("unbound-checkconf", "unbound")
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        "server:\n"
        '    chroot: ""\n    username: ""\n    directory: "' + str(tmp_path) + '"\n'
        '    pidfile: ""\n    module-config: "iterator"\n'
        f"    tcp-upstream: {'yes' if tcp else 'no'}\n"
        'forward-zone:\n    name: "."\n    forward-addr: 169.254.169.253@53\n'
    )
    ok = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    got = subprocess.run(
        [checkconf, "-o", "tcp-upstream", str(conf)], capture_output=True, text=True, check=True
    )
    df = read_unbound_conf(conf)
    assert df["force_tcp"].to_list() == [got.stdout.strip() == "yes"] == [tcp]
    assert df["upstream"].to_list() == ["169.254.169.253:53"]


def test_space_in_name_keeps_order(ub: Path) -> None:
    """unbound 1.17 prints a space in a name as '?', but a name with spaces (other versions,
    hand edits) still parses, and rows stay in file order (line numbers 1..5 of the file)."""
    res = read_unbound_log(ub / "edge-space-in-name.log")
    assert res.received.select("line_no", "qname").rows() == [(1, "we ird.test"), (2, "plain.test")]
    assert res.queries.select("line_no", "qname", "rcode").rows() == [
        (3, "plain.test", "NOERROR"),
        (4, "we ird.test", "NXDOMAIN"),
        (5, "last.test", "NOERROR"),
    ]
    assert res.queries["duration_s"].to_list() == [0.0001, 2.5, 0.0002]
    assert res.queries["qtype"].to_list() == ["A", "A", "AAAA"]


def test_hostile_lines_never_crash(ub: Path, tmp_path: Path) -> None:
    """Mutated real lines and random bytes: every line ends up in exactly one frame, no traceback."""
    import random

    rng = random.Random(7)
    real = (ub / "real-lab-epoch.log").read_bytes().splitlines()
    out = []
    for _ in range(3000):
        line = bytearray(rng.choice(real))
        for _ in range(rng.randrange(0, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(line) + 1)
            if op == 0:
                line[pos:pos] = bytes([rng.randrange(256)])
            elif op == 1 and len(line) > 1:
                del line[min(pos, len(line) - 1)]
            else:
                line[pos:pos] = rng.choice([b" ", b"]", b"[", b": ", b"\r", b"\x00", b'"', b"<"])
        out.append(bytes(line).replace(b"\n", b" "))
    out += [
        b"[",
        b"]",
        b"[]",
        b"[1] x[1:0] info: ",
        b"Jan 99 99:99:99 u[1:0] info: x",
        b"x" * 100_000,
    ]
    p = tmp_path / "hostile.log"
    p.write_bytes(b"\n".join(out) + b"\n")
    with pytest.warns(KitWarning):
        res = read_unbound_log(p)
    assert res.lines == len(out) == res.records
    ids = pl.concat([f.select("line_no") for f in _frames(res)])["line_no"]
    assert ids.sort().to_list() == list(range(1, len(out) + 1))  # each line exactly once
    assert res.queries["duration_s"].min() >= 0
    with pytest.raises(InputFormatError):
        read_unbound_log(p, strict=True)


def test_conf_token_syntax_agrees_with_unbound(tmp_path: Path) -> None:
    """Several options on one line, ``key:value`` without a space, a value on the next line:
    unbound-checkconf accepts the file and reports the same port and tcp-upstream."""
    checkconf = require_tool("unbound-checkconf", "unbound")
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        f'server: chroot: "" username: "" directory: "{tmp_path}" pidfile: ""\n'
        '  module-config: "iterator" port:5353 tcp-upstream:\n'
        "     yes   # the value on the next line\n"
        'forward-zone: name: "example." forward-addr: 10.0.0.1@5300 forward-addr: fe80::1\n'
    )
    ok = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    def opt(name: str) -> str:
        return subprocess.run(
            [checkconf, "-o", name, str(conf)], capture_output=True, text=True, check=True
        ).stdout.strip()

    df = read_unbound_conf(conf)
    assert opt("port") == "5353" and opt("tcp-upstream") == "yes"
    assert df.select("zone", "port", "upstream", "force_tcp", "line_no").rows() == [
        ("example", 5353, "10.0.0.1:5300", True, 4),
        ("example", 5353, "[fe80::1]:53", True, 4),
    ]


def test_one_finding_covers_both_resolvers(ub: Path) -> None:
    """The unbound frame stacks onto the Corefile's (same schema): forced TCP found in both."""
    corefile = pytest.importorskip("kit.sources.corefile")
    cf = corefile.read_corefile(
        ". {\n    forward . 169.254.169.253 {\n        force_tcp\n    }\n}\n"
    )
    un = read_unbound_conf(
        'server:\n  tcp-upstream: yes\nforward-zone:\n  name: "."\n  forward-addr: 169.254.169.253\n'
    )
    both = pl.concat([cf.forward_settings(), un])
    forced = (
        both.filter(pl.col("force_tcp")).select("resolver", "zone", "upstream", "transport").rows()
    )
    assert forced == [
        ("coredns", ".", "169.254.169.253:53", "tcp"),
        ("unbound", ".", "169.254.169.253:53", "tcp"),
    ]
