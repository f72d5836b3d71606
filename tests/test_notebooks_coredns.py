"""Notebooks 02, 03 and 06 on real CoreDNS artefacts, through ``dnskit report``.

The bundled sample has no CoreDNS log, so the CoreDNS path of the log notebooks is exercised here:

- ``excerpts``: a folder as an on-call engineer would hand it over, with the real CoreDNS logs of
  ``../shared/fixtures/logs`` (query lines, ``errors``-plugin lines of several CoreDNS versions,
  with and without timestamps), a real NodeLocal DNSCache Corefile (``force_tcp``) and one tiny
  hand-made log whose qname carries ``<script>``. The whole report runs (``dnskit report`` in
  process); notebooks without inputs are skipped.
- ``burst``: a NodeLocal DNSCache log in the shape of the reference incident (hundreds of TCP
  i/o timeouts per minute towards the forced-TCP upstream after the change), written by the test,
  with the real ``node-cache`` example Corefile; notebooks 03 and 06 with ``-p change_time``.

Every number compared below is computed from the raw files by the plain regexes of this module,
never by the kit's loader.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import io
import json
import re
import shutil
import textwrap
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest

import kit.report as report
from kit.cli import main

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
UTC = dt.UTC


# an errors-plugin line (CoreDNS >= 1.3 "plugin/errors: ", before that none and "unreachable
# backend: ") with a Go net.OpError timeout towards an upstream
TIMEOUT_LINE = re.compile(
    r"\[(?:ERROR|WARNING)\] (?:plugin/errors: )?\d+ (?P<qname>\S+) (?P<qtype>[A-Z0-9]+): "
    r"(?:unreachable backend: )?(?P<op>read|dial|write) (?P<transport>tcp|udp) "
    r"(?:\S+->)?(?P<upstream>[^\s>]+): i/o timeout"
)
# any errors-plugin line of one failed query, and a consolidate summary
ERROR_LINE = re.compile(r"\[(?:ERROR|WARNING)\] (?:plugin/errors: )?\d+ \S+ [A-Z0-9]+: ")
CONSOLIDATED = re.compile(
    r"\[(?:ERROR|WARNING|INFO|DEBUG)\] (?:plugin/errors: )?(\d+) errors like '.*' occurred in last"
)
# a log-plugin query line: modern ("[INFO] ip:port - id ...") or CoreDNS <= 1.2 ("ip:port -
# [07/Sep/2018:15:29:11 +0000] id ..."); the duration is the last "<float>s" field
QUERY_LINE = re.compile(
    r'(?:\[INFO\] \S+ - |\S+ - \[[^\]]+\] )\d+ "(?P<qtype>\S+) IN (?P<qname>\S+) (?:udp|tcp) \d+ '
    r'(?:true|false) \d+" \S+ \S+ \d+ (?P<dur>[0-9.]+)s'
)
# a time at the start of a line: RFC 3339 (CoreDNS 1.2.6-1.6.2, kubectl --timestamps) or Go's
# log prefix "yyyy/mm/dd hh:mm:ss" (CoreDNS before 1.3)
RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)")
GO_LOG = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) ")
# CoreDNS <= 1.2 query lines carry their own time in Apache style
APACHE = re.compile(r" - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] ")


def line_time(line: str) -> dt.datetime | None:
    """The time of a log line: an RFC 3339 prefix (CoreDNS 1.2.6-1.6.2, kubectl --timestamps), the
    Apache-style time of a CoreDNS <= 1.2 query line, or Go's log prefix; else None."""
    m = RFC3339.match(line)
    if m:
        zone = "+00:00" if m.group(2) == "Z" else m.group(2)
        return dt.datetime.fromisoformat(m.group(1) + zone).astimezone(UTC)
    m = APACHE.search(line)
    if m:
        return dt.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
    m = GO_LOG.match(line)
    if m:
        return dt.datetime(*map(int, m.groups()), tzinfo=UTC)
    return None


# ---------------------------------------------------------------------------------------------
# reading what the executed notebooks show
# ---------------------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every <table> of an HTML fragment as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _value(cell: str) -> Any:
    """A polars HTML cell as a Python value: quoted strings unquoted, ``null`` as None."""
    if cell == "null":
        return None
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        return cell[1:-1]
    return cell


def frame_shown(html_text: str) -> list[dict[str, Any]]:
    """The rows of the polars frame an output shows (header row, dtype row, then data)."""
    parser = _Tables()
    parser.feed(html_text)
    assert len(parser.tables) == 1, "one table per frame output"
    header, _dtypes, *rows = parser.tables[0]
    assert all(not any(c == "…" for c in r) for r in rows), "the frame was shown in full"
    return [dict(zip(header, map(_value, r), strict=True)) for r in rows]


@dataclass
class Executed:
    """One executed notebook: its code cells and their outputs."""

    nb: Any

    def _cell(self, contains: str) -> Any:
        # whitespace aside: ruff format wraps a call differently when a module path grows
        want = "".join(contains.split())
        cells = [
            c for c in self.nb.cells if c.cell_type == "code" and want in "".join(c.source.split())
        ]
        assert len(cells) == 1, f"one code cell contains {contains!r}, found {len(cells)}"
        return cells[0]

    def frame(self, contains: str) -> list[dict[str, Any]]:
        """The frame shown by the cell whose source contains ``contains``."""
        outs = [o for o in self._cell(contains).outputs if "text/html" in o.get("data", {})]
        assert len(outs) == 1, f"cell {contains!r} shows one frame"
        return frame_shown(outs[0]["data"]["text/html"])

    def printed(self, contains: str) -> str:
        """What the cell printed (stdout only: the kit's log records go to stderr)."""
        return "".join(
            o["text"]
            for o in self._cell(contains).outputs
            if o.output_type == "stream" and o.get("name") == "stdout"
        )

    def has_chart(self, contains: str) -> bool:
        return any("image/svg+xml" in o.get("data", {}) for o in self._cell(contains).outputs)


@dataclass
class Run:
    rc: int
    err: str
    html: str
    result_runs: dict[str, tuple[str, str]]
    executed: dict[str, Executed]
    folder: Path


def _executed(folder: Path) -> dict[str, Executed]:
    return {p.stem: Executed(nbformat.read(p, as_version=4)) for p in folder.glob("*.ipynb")}


def _keep_on_failure(executed: Path, ok: bool) -> None:
    if not ok:
        keep = REPO / "test-artifacts"
        keep.mkdir(exist_ok=True)
        for p in executed.glob("*.ipynb"):
            shutil.copy(p, keep / f"coredns-{p.stem}-err.ipynb")


# ---------------------------------------------------------------------------------------------
# scenario 1: real excerpts, the whole report through the CLI
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def excerpts(
    tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path, data_dir: Path
) -> Run:
    root = tmp_path_factory.mktemp("excerpts")
    folder = root / "handed-over"
    (folder / "logs").mkdir(parents=True)
    (folder / "config").mkdir()
    # every file of ../shared/fixtures/logs, as collected: CoreDNS 1.2 to 1.14, docker JSON
    # wrapped, kubectl --timestamps, and the collector's sources.tsv (not a log)
    for p in sorted((shared_fixtures / "logs").iterdir()):
        shutil.copy(p, folder / "logs" / p.name)
    shutil.copy(
        data_dir / "notebooks_coredns" / "hostile_qname.log", folder / "logs" / "node-b.log"
    )
    corefile = (data_dir / "corefile" / "k8s_addon_nodelocaldns.Corefile").read_text()
    # the NodeLocal DNSCache addon's Corefile, cut verbatim from the shared fixture
    assert corefile in (shared_fixtures / "nodelocaldns_corefiles.txt").read_text()
    (folder / "config" / "Corefile").write_text(corefile)
    out = root / "r.html"
    executed = root / "executed"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(["report", str(folder), "-o", str(out), "--keep-executed", str(executed)])
    _keep_on_failure(executed, rc == 0)
    runs = {}
    for line in buf.getvalue().splitlines():
        m = re.match(r"dnskit report: (\S+) (ok|skipped|failed) \([0-9.]+ s\)(?:: (.*))?$", line)
        if m:
            runs[m.group(1)] = (m.group(2), m.group(3) or "")
    return Run(
        rc, buf.getvalue(), out.read_text(encoding="utf-8"), runs, _executed(executed), folder
    )


def _log_lines(folder: Path) -> list[tuple[str, str, dt.datetime | None]]:
    """(file name, line, time) of every line of the ``.log`` files handed over.

    A docker json-file record is unwrapped: its ``message`` is the line, and its ``time`` the
    line's time when the message has none of its own.
    """
    out = []
    for p in sorted(folder.rglob("*.log")):
        for raw in p.read_text(encoding="utf-8").splitlines():
            wrapper = None
            line = raw
            if raw.startswith("{"):
                record = json.loads(raw)
                line = record["message"].rstrip("\n")
                wrapper = line_time(record["time"])
            out.append((p.name, line, line_time(line) or wrapper))
    return out


@pytest.mark.notebook
def test_report_runs_log_notebooks_and_skips_the_others_with_the_reason(excerpts: Run) -> None:
    assert excerpts.rc == 0, excerpts.err
    assert excerpts.result_runs["00-start-here"][0] == "ok"
    for name in ("02-query-logs", "03-error-logs", "06-findings"):
        assert excerpts.result_runs[name] == ("ok", ""), name
    # no metrics export and no capture were handed over
    needs = {
        "01-latency-overview": "no artefact for its input metrics",
        "04-capture-dns": "no artefact for its input capture (capture)",
        "05-upstream-tcp": "no artefact for its input capture (capture)",
    }
    for name, reason in needs.items():
        status, why = excerpts.result_runs[name]
        assert status == "skipped" and why.startswith(reason), (name, why)
        # the report's notebook table says it too, as text
        row = re.search(
            rf"<tr class=['\"]dnskit-status-skipped['\"]><td>{name}</td><td>skipped</td>"
            rf"<td>[0-9.]+</td><td>([^<]*)</td></tr>",
            excerpts.html,
        )
        assert row is not None and html.unescape(row.group(1)).startswith(reason), name


@pytest.mark.notebook
def test_every_log_is_used_and_the_sources_table_ignored(excerpts: Run) -> None:
    ignored = re.search(r"<h3>Ignored \((\d+)\)</h3>(.*?)</table>", excerpts.html, re.DOTALL)
    assert ignored is not None
    # the collector's sources.tsv is the one file that is not a CoreDNS log or a Corefile
    assert ignored.group(1) == "1"
    row = re.search(r"<td>([^<]*)</td><td>(\w+)</td><td>([^<]*)</td>", ignored.group(2))
    assert row is not None
    assert row.group(1).endswith("github_issue_excerpts.sources.tsv")
    assert row.group(2) == "unknown" and row.group(3).startswith("not recognised: ")
    used = re.search(r"<h3>Used \((\d+)\)</h3>", excerpts.html)
    logs = sorted(excerpts.folder.rglob("*.log"))
    assert used is not None and int(used.group(1)) == len(logs) + 1  # and the Corefile


@pytest.mark.notebook
def test_hostile_qname_is_text_in_the_report(excerpts: Run) -> None:
    assert re.search(r"<script", excerpts.html, re.IGNORECASE) is None
    # the name as CoreDNS logged it, escaped, in the slowest-query table of 02 (1.5 s)
    shown = html.escape(r"<script>alert\(1\)</script>.evil.example", quote=False)
    assert shown in excerpts.html
    slowest = excerpts.executed["02-query-logs"].frame("kit.sources.coredns.slow_queries(")
    assert r"<script>alert\(1\)</script>.evil.example" in [r["qname"] for r in slowest]


@pytest.mark.notebook
def test_02_queries_per_file_and_slowest_query(excerpts: Run) -> None:
    nb = excerpts.executed["02-query-logs"]
    per_file = Counter()
    durations = []
    for name, line, _ in _log_lines(excerpts.folder):
        m = QUERY_LINE.search(line)
        if m:
            per_file[name] += 1
            durations.append((float(m.group("dur")), m.group("qname").rstrip(".")))
    shown = {Path(r["source"]).name: int(r["queries"]) for r in nb.frame("queries.group_by(")}
    assert shown == dict(per_file)
    # the slowest query: 6.010923182 s for 9gag.com (coredns/coredns#4724, no answer written)
    slowest = nb.frame("kit.sources.coredns.slow_queries(")
    assert float(slowest[0]["duration_s"]) == pytest.approx(max(durations)[0], abs=1e-6)
    assert slowest[0]["qname"] == max(durations)[1] == "9gag.com"
    # logged without a response ("NOERROR - 0 6.010923182s"): not answered
    unanswered = {
        m.group("qname").rstrip(".")
        for _, line, _ in _log_lines(excerpts.folder)
        if (m := QUERY_LINE.search(line)) and re.search(r'" \S+ - 0 [0-9.]+s', line)
    }
    assert unanswered == {"9gag.com", "us.data.logs.insight.rapid7.com"}
    assert {r["qname"]: r["answered"] for r in slowest} == {
        r["qname"]: str(r["qname"] not in unanswered).lower() for r in slowest
    }
    # the slow ones (>= 1 s, the default threshold), slowest first
    assert [float(r["duration_s"]) for r in slowest] == pytest.approx(
        sorted((d for d, _ in durations if d >= 1.0), reverse=True), abs=1e-6
    )
    # many lines carry no time: the notebook says how many, instead of hiding them
    untimed = sum(
        1 for _, line, t in _log_lines(excerpts.folder) if QUERY_LINE.search(line) and t is None
    )
    assert untimed > 0
    assert f"{untimed} of the {len(durations)} queries have no timestamp" in nb.printed(
        'print(kit.analyses.resolver_logs.timing_note(queries, "queries"))'
    )


@pytest.mark.notebook
def test_03_counts_the_coredns_errors_per_upstream_and_transport(excerpts: Run) -> None:
    nb = excerpts.executed["03-error-logs"]
    lines = _log_lines(excerpts.folder)
    timeouts = [(m, line) for _, line, _ in lines if (m := TIMEOUT_LINE.search(line))]
    expected = Counter((m["upstream"], m["transport"]) for m, _ in timeouts)
    # the klog lines "dial tcp 10.233.0.1:443: i/o timeout" are Kubernetes client errors, not
    # upstream errors: the regex leaves them out, and so must the kit
    assert ("10.233.0.1:443", "tcp") not in expected
    summary = nb.frame("kit.analyses.resolver_logs.error_summary(core)")
    got: Counter[tuple[str, str]] = Counter()
    for r in summary:
        if r["kind"] == "timeout" and r["upstream"] is not None:
            got[(r["upstream"], r["transport"])] += int(r["lines"])
    assert got == expected
    # all error lines of every CoreDNS version, and consolidate summaries as the errors they
    # stand for ("4 errors like '...' occurred in last 2s" = 4)
    plain = sum(1 for _, line, _ in lines if ERROR_LINE.search(line))
    summarised = sum(int(m.group(1)) for _, line, _ in lines if (m := CONSOLIDATED.search(line)))
    assert plain > len(timeouts) and summarised > 0
    assert sum(int(r["errors"]) for r in summary) == plain + summarised
    # the loop plugin's self-tests: HINFO for "<random>.<random>." (coredns/deployment#225 and
    # kubernetes/kubernetes#71826 are full of them)
    probes = sum(
        1
        for _, line, _ in lines
        if ERROR_LINE.search(line) and re.search(r" \d+\.\d+\. HINFO: ", line)
    )
    assert probes > 0
    assert sum(int(r["loop_probes"]) for r in summary) == probes
    # the source of the signal: the CoreDNS errors plugin, not the capture fallback
    said = nb.printed("kit.analyses.resolver_logs.failure_signal(")
    assert "counted from the CoreDNS errors plugin" in said
    assert "capture instead" not in said
    assert nb.printed("capture_bin =") == "No capture given.\n"
    # no run.json and no change_time: the onset says the change time is unknown
    assert "Change time: unknown" in nb.printed("kit.analyses.resolver_logs.onset(errors_per_bin")


@pytest.mark.notebook
def test_03_binned_counts_match_the_timestamped_lines(excerpts: Run) -> None:
    nb = excerpts.executed["03-error-logs"]
    bins = nb.frame("kit.analyses.resolver_logs.nonzero_bins(errors_per_bin")
    peaks = nb.frame("kit.analyses.resolver_logs.peak_rate(errors_per_bin")
    bin_s = int(peaks[0]["bin_s"])
    # logs spanning years get wide bins (at most 1000 over the span), never 10 s
    assert bin_s > 3600
    expected: Counter[tuple[dt.datetime, str, str, str]] = Counter()
    for _, line, t in _log_lines(excerpts.folder):
        m = TIMEOUT_LINE.search(line)
        if m and t is not None:
            start = dt.datetime.fromtimestamp(int(t.timestamp()) // bin_s * bin_s, UTC)
            expected[(start, m["upstream"], m["transport"], m["op"])] += 1
    got = Counter()
    for r in bins:
        if r["upstream"] is None:  # "no upstream host" lines: not an i/o timeout
            continue
        start = dt.datetime.strptime(r["ts"], "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
        got[(start, r["upstream"], r["transport"], r["op"])] += int(r["count"])
    assert got == expected
    # the untimed ones are said, not silently dropped
    assert "have no timestamp" in nb.printed(
        "print(\n    kit.analyses.resolver_logs.timing_note(core.errors"
    )


@pytest.mark.notebook
def test_06_forced_tcp_from_the_corefile_and_why_no_burst(excerpts: Run) -> None:
    nb = excerpts.executed["06-findings"]
    shown = {r["id"]: r for r in nb.frame("kit.findings.findings_frame(found)")}
    # three force_tcp blocks in the addon's Corefile (counted in the file: 3 "force_tcp")
    corefile = (excerpts.folder / "config" / "Corefile").read_text()
    assert corefile.count("force_tcp") == 3
    # no capture, and no logged TCP error towards a placeholder address: not corroborated
    assert shown["forced-tcp"]["severity"] == "warning"
    assert "tcp_errors_logged=0" in shown["forced-tcp"]["evidence"]
    assert "__PILLAR__CLUSTER__DNS__" in shown["forced-tcp"]["title"]
    assert "upstream-error-bursts" not in shown
    # why not: the busiest minute has fewer than 10 timed errors. By hand from the files: the
    # pre-1.3 lines of coredns/coredns#2284 are all in minute 2018-11-21 06:48 (9 lines, lines
    # 12-20 of github_issue_excerpts_errors.log), every other timed error line is alone in its
    # minute
    per_minute: Counter[dt.datetime] = Counter()
    for _, line, t in _log_lines(excerpts.folder):
        if t is not None and re.search(r"\[(ERROR|WARNING)\] (plugin/errors: )?\d+ ", line):
            per_minute[t.replace(second=0, microsecond=0)] += 1
    peak_minute, peak = per_minute.most_common(1)[0]
    assert (peak_minute, peak) == (dt.datetime(2018, 11, 21, 6, 48, tzinfo=UTC), 9)
    status = nb.frame("kit.findings.burst_status(")
    assert len(status) == 1
    assert int(status[0]["peak_per_bin"]) == peak
    assert int(status[0]["errors"]) == sum(per_minute.values())
    untimed = int(status[0]["errors_without_ts"])
    assert untimed > 0
    assert status[0]["verdict"] == (
        f"not fired: peak {peak} timed errors per 1m, below 10; {untimed} without a timestamp"
    )
    # the symptom chart spans years of excerpts: bins are widened, not 5 s
    # (from 2018 to 2024: more than 1000 bins of 5 s, 1 h, 1 d: whole days)
    assert re.fullmatch(r"Events per second, in bins of \d+ d\.\n", nb.printed("symptom_bin ="))
    assert nb.has_chart("kit.charts.symptom_chart(")


# ---------------------------------------------------------------------------------------------
# scenario 2: the reference incident's shape: a burst of TCP i/o timeouts after the change
# ---------------------------------------------------------------------------------------------

CHANGE = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
UPSTREAM = "8.8.8.8"  # the upstream of kubernetes/dns cmd/node-cache/Corefile (force_tcp)
BURST_PER_MINUTE = (150, 220, 180)  # errors in the three minutes after the change


def _stamp(t: dt.datetime) -> str:
    """kubectl logs --timestamps prefix: RFC 3339 with nanoseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _burst_log() -> str:
    """Two healthy minutes (one answered query a second), then three minutes in which every
    forwarded query fails with a TCP timeout (dial and read alternating), some answered late."""
    lines = []
    for i in range(120):
        t = CHANGE - dt.timedelta(seconds=120 - i)
        lines.append(
            f"{_stamp(t)} [INFO] 10.0.0.9:{40000 + i} - {i + 1} "
            f'"A IN svc{i}.example.com. udp 40 false 1232" NOERROR qr,rd,ra 80 0.0012s'
        )
    n = 0
    for minute, count in enumerate(BURST_PER_MINUTE):
        for k in range(count):
            t = CHANGE + dt.timedelta(minutes=minute, microseconds=k * 59_000_000 // count)
            n += 1
            if n % 2:
                err = f"dial tcp {UPSTREAM}:53: i/o timeout"
            else:
                err = f"read tcp 10.0.0.5:{30000 + n}->{UPSTREAM}:53: i/o timeout"
            lines.append(f"{_stamp(t)} [ERROR] plugin/errors: 2 m{n}.example.com. A: {err}")
            if k % 10 == 0:  # a query that was answered after the SYN was sent again
                lines.append(
                    f"{_stamp(t)} [INFO] 10.0.0.9:{50000 + n} - {n} "
                    f'"A IN m{n}.example.com. udp 40 false 1232" NOERROR qr,rd,ra 80 3.0041s'
                )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, shared_fixtures: Path) -> Run:
    root = tmp_path_factory.mktemp("burst")
    folder = root / "node-1"
    (folder / "logs").mkdir(parents=True)
    (folder / "logs" / "node-local-dns-x7k2p.log").write_text(_burst_log())
    corefile = (data_dir / "corefile" / "node_cache_example.Corefile").read_text()
    assert corefile in (shared_fixtures / "nodelocaldns_corefiles.txt").read_text()
    (folder / "Corefile").write_text(corefile)
    executed = root / "executed"
    result = report.render(
        [NOTEBOOKS / "03-error-logs.py", NOTEBOOKS / "06-findings.py"],
        artefacts=[folder],
        parameters={"change_time": "2024-05-01T12:00:00Z", "every": "1m"},
        output_html=root / "r.html",
        executed_dir=executed,
    )
    _keep_on_failure(executed, result.ok)
    return Run(
        0 if result.ok else 1,
        "",
        (root / "r.html").read_text(encoding="utf-8"),
        {r.name: (r.status, r.reason) for r in result.runs},
        _executed(executed),
        folder,
    )


@pytest.mark.notebook
def test_burst_03_per_minute_counts_equal_the_log(burst: Run) -> None:
    assert burst.result_runs == {"03-error-logs": ("ok", ""), "06-findings": ("ok", "")}
    nb = burst.executed["03-error-logs"]
    expected: Counter[tuple[dt.datetime, str, str, str]] = Counter()
    for _, line, t in _log_lines(burst.folder):
        m = TIMEOUT_LINE.search(line)
        if m:
            assert t is not None
            expected[
                (t.replace(second=0, microsecond=0), m["upstream"], m["transport"], m["op"])
            ] += 1
    # the generator's own numbers: 3 minutes, dial and read alternating
    assert sum(expected.values()) == sum(BURST_PER_MINUTE)
    got = Counter()
    for r in nb.frame("kit.analyses.resolver_logs.nonzero_bins(errors_per_bin"):
        start = dt.datetime.strptime(r["ts"], "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
        got[(start, r["upstream"], r["transport"], r["op"])] += int(r["count"])
    assert got == expected
    peaks = {r["op"]: r for r in nb.frame("kit.analyses.resolver_logs.peak_rate(errors_per_bin")}
    for op in ("dial", "read"):
        top = max(n for (_, up, tr, o), n in expected.items() if o == op)
        assert int(peaks[op]["peak"]) == top
        assert float(peaks[op]["peak_per_min"]) == pytest.approx(top)  # 1-minute bins
        assert top >= 100  # hundreds of TCP i/o timeouts per minute
    # onset: both start in the minute of the change, none before it
    onset = {r["op"]: r for r in nb.frame("kit.analyses.resolver_logs.onset(errors_per_bin")}
    for op in ("dial", "read"):
        assert float(onset[op]["since_change_s"]) == 0.0
        assert float(onset[op]["before_change"]) == 0.0
        assert float(onset[op]["after_change"]) == sum(
            n for (_, _, _, o), n in expected.items() if o == op
        )
    assert "Change time: 2024-05-01T12:00:00Z (from the change_time parameter)" in nb.printed(
        "kit.analyses.resolver_logs.onset(errors_per_bin"
    )
    assert "All 550 upstream errors have a timestamp" in nb.printed(
        "print(\n    kit.analyses.resolver_logs.timing_note(core.errors"
    )
    assert nb.has_chart("errors_per_bin = kit.sources.coredns.error_counts(")


@pytest.mark.notebook
def test_burst_06_error_burst_and_forced_tcp_findings(burst: Run) -> None:
    nb = burst.executed["06-findings"]
    shown = {r["id"]: r for r in nb.frame("kit.findings.findings_frame(found)")}
    # 220 errors in the busiest minute (BURST_PER_MINUTE), at least the critical 100
    assert shown["upstream-error-bursts"]["severity"] == "critical"
    assert shown["upstream-error-bursts"]["title"].startswith(
        f"Upstream error bursts: up to {max(BURST_PER_MINUTE)} errors per 1m"
    )
    assert (
        shown["forced-tcp"]["title"]
        == f"Upstream forced to TCP in the resolver config ({UPSTREAM}:53)"
    )
    # no capture, but the log shows the damage: every error is over tcp towards the forced upstream
    assert shown["forced-tcp"]["severity"] == "critical"
    assert f"tcp_errors_logged={sum(BURST_PER_MINUTE)}" in shown["forced-tcp"]["evidence"]
    status = nb.frame("kit.findings.burst_status(")
    assert int(status[0]["peak_per_bin"]) == max(BURST_PER_MINUTE)
    assert status[0]["verdict"].startswith("fired (critical)")
    # the findings reach the top of the report
    notebooks = re.search(r"<section [^>]*id=['\"]notebooks['\"]", burst.html)
    assert notebooks is not None
    top = burst.html[: notebooks.start()]
    assert "upstream-error-bursts" in top and "forced-tcp" in top


def test_coredns_input_is_optional_and_defaults_to_none() -> None:
    # the CoreDNS inputs are optional and default to None: the report fills them from artefacts
    for name in ("02-query-logs.py", "03-error-logs.py", "06-findings.py"):
        params = report.notebook_parameters(report.read_notebook(NOTEBOOKS / name))
        coredns = [p for p in params if p.name == "coredns_log"]
        assert len(coredns) == 1 and coredns[0].optional and coredns[0].default == "None"


def test_helpers_text_examples(shared_fixtures: Path) -> None:
    # the sentences the notebooks print, on hand-made inputs
    import polars as pl

    import kit
    import kit.analyses.resolver_logs as logs
    import kit.sources.timeline as timeline

    frame = pl.DataFrame(
        {"ts": [None, None], "consolidated_count": [None, 4]},
        schema={"ts": pl.Datetime("us", "UTC"), "consolidated_count": pl.UInt32},
    )
    # 1 plain line + a summary standing for 4 errors = 5 errors, none timed
    assert logs.timing_note(frame, count="consolidated_count").startswith(
        "None of the 5 upstream errors has a timestamp"
    )
    assert logs.timing_note(frame.head(0)) == "No upstream errors in the logs given."
    tl = timeline.timeline(change_time="2024-05-01T14:00:00+02:00")
    assert logs.change_note(tl, change_time="2024-05-01T14:00:00+02:00") == (
        "Change time: 2024-05-01T12:00:00Z (from the change_time parameter). Fix time: not known."
    )
    assert logs.change_note(None).startswith("Change time: unknown")
    assert (
        textwrap.shorten(logs.failure_signal(None, None), 40)
        == "No CoreDNS log given: no resolver- [...]"
    )
    # a real log with query lines only (2 lines, no errors plugin line)
    quiet = kit.read_coredns_log(shared_fixtures / "logs" / "elastic_beats_coredns.log")
    assert quiet.errors.height == 0
    assert logs.failure_signal(quiet, None).startswith(
        "The CoreDNS log holds no errors-plugin line"
    )
    assert "Give a capture" in logs.failure_signal(quiet, None)


# ---------------------------------------------------------------------------------------------
# the kit.analyses.resolver_logs helpers the notebooks call, on hand-made inputs
# ---------------------------------------------------------------------------------------------


def _counts(values: list[int], every_s: int = 10) -> Any:
    import polars as pl

    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + dt.timedelta(seconds=every_s * i) for i in range(len(values))] * 2,
            "upstream": ["a"] * len(values) + ["b"] * len(values),
            "count": values + [0] * len(values),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("count").cast(pl.UInt32))


def test_peak_rate_and_nonzero_bins_hand_computed() -> None:
    import kit.analyses.resolver_logs as logs

    counts = _counts([0, 3, 7, 2, 7])
    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    out = logs.peak_rate(counts, every="10s", by=["upstream"])
    # a: 3+7+2+7 = 19 in 4 bins; peak 7 first in the bin at +20 s; 7 per 10 s = 42 per minute
    # b: all zero, no peak bin
    assert out.rows() == [
        ("a", 19, 4, 7, start + dt.timedelta(seconds=20), 10, 42.0),
        ("b", 0, 0, 0, None, 10, 0.0),
    ]
    assert logs.peak_rate(counts, every="1m", by=["upstream"])["peak_per_min"][0] == 7.0
    with pytest.raises(ValueError, match=r"every=.soon.: expected a duration"):
        logs.peak_rate(counts, every="soon")
    shown = logs.nonzero_bins(counts, by=["upstream"])
    assert shown.rows() == [
        (start + dt.timedelta(seconds=s), "a", n) for s, n in ((10, 3), (20, 7), (30, 2), (40, 7))
    ]


def test_burst_status_verdicts(data_dir: Path) -> None:
    import kit

    d = data_dir / "findings"
    burst = kit.findings.burst_status(coredns=kit.read_coredns_log(d / "errors_burst.log"))
    text = (d / "errors_burst.log").read_text()
    row = burst.row(0, named=True)
    # 14 error lines; counted by hand, 12 of them in the first minute (12:00:00 to 12:00:44)
    assert row["errors"] == text.count("[ERROR]") == 14
    assert row["peak_per_bin"] == 12
    assert row["peak_ts"] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert row["verdict"].startswith("fired (warning): Upstream error bursts: up to 12 errors")
    # three errors, one a minute
    quiet = kit.findings.burst_status(coredns=kit.read_coredns_log(d / "errors_quiet.log"))
    assert quiet.row(0, named=True)["verdict"] == (
        "not fired: peak 1 timed errors per 1m, below 10"
    )
    assert kit.findings.burst_status().row(0, named=True)["verdict"] == (
        "not checked: no CoreDNS or unbound log given"
    )
    assert kit.findings.burst_status(
        coredns=kit.read_coredns_log(d / "errors_quiet.log"), min_errors=1
    )["verdict"][0].startswith("fired (warning)")


def test_bin_label() -> None:
    import kit.analyses.resolver_logs as logs

    assert [logs.bin_label(w) for w in ("10s", "90s", "60s", "1m", "21600s", "259200s", "1d")] == [
        "10 s",
        "90 s",
        "1 min",
        "1 min",
        "6 h",
        "3 d",
        "1 d",
    ]


def test_forced_tcp_corroborated_by_logged_tcp_errors(data_dir: Path) -> None:
    import kit
    import kit.findings as kf

    d = data_dir / "findings"
    forward = kit.read_corefile(d / "Corefile.force_tcp").forward_settings()
    log = kit.read_coredns_log(d / "errors_burst.log")
    text = (d / "errors_burst.log").read_text()
    # 12 "dial tcp 169.254.169.253:53" lines; the 2 others are over udp
    tcp = len(
        re.findall(r"\[ERROR\] .* (?:dial|read|write) tcp (?:\S+->)?169\.254\.169\.253:", text)
    )
    assert tcp == 12
    f = kf.check_forced_tcp(forward, coredns=log)
    assert f is not None and f.severity == "critical"
    assert f.evidence["tcp_errors_logged"] == tcp
    assert f"{tcp} failed TCP exchange(s) with 10.96.0.10, 169.254.169.253" in f.explanation
    # below the threshold: still the config alone, a warning
    weak = kf.check_forced_tcp(forward, coredns=log, min_tcp_errors=tcp + 1)
    assert weak is not None and weak.severity == "warning"
    # without a log the evidence has no such count
    plain = kf.check_forced_tcp(forward)
    assert plain is not None and "tcp_errors_logged" not in plain.evidence


def test_span_every_widens_over_long_spans() -> None:
    import polars as pl

    import kit.analyses.resolver_logs as logs

    t0 = dt.datetime(2024, 5, 1, tzinfo=UTC)
    a = pl.DataFrame({"ts": [t0, None]}, schema={"ts": pl.Datetime("us", "UTC")})
    b = pl.DataFrame(
        {"first_ts": [t0], "last_ts": [t0 + dt.timedelta(days=10)]},
        schema={"first_ts": pl.Datetime("us", "UTC"), "last_ts": pl.Datetime("us", "UTC")},
    )
    # 10 days = 864000 s: 5 s bins would be 172800; at most 1000 bins needs 864 s: 900 s (15 min)
    assert logs.span_every(a, None, b, every="5s", columns=("ts", "first_ts", "last_ts")) == "900s"
    # one frame alone spans nothing: the wanted width stays
    assert logs.span_every(a, None, every="5s") == "5s"
    assert logs.span_every(every="1m") == "1m"


@pytest.mark.notebook
def test_03_on_a_log_without_timestamps_says_so(tmp_path: Path, shared_fixtures: Path) -> None:
    # CoreDNS >= 1.6.3 copied without --timestamps: no line of this file starts with a time
    src = shared_fixtures / "logs" / "elastic_integrations_test-coredns-error.log"
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / "coredns.log")
    text = src.read_text()
    assert all(line_time(line) is None for line in text.splitlines())
    # by hand: 4 plain error lines and 4 summaries "4 errors like ..." = 20 errors
    errors = len(ERROR_LINE.findall(text)) + sum(int(n) for n in CONSOLIDATED.findall(text))
    assert errors == 20
    result = report.render(
        [NOTEBOOKS / "03-error-logs.py"],
        artefacts=[tmp_path / "in"],
        parameters={"change_time": "2024-05-01T12:00:00Z"},
        output_html=tmp_path / "r.html",
        executed_dir=tmp_path / "executed",
    )
    _keep_on_failure(tmp_path / "executed", result.ok)
    assert [(r.name, r.status) for r in result.runs] == [("03-error-logs", "ok")]
    nb = _executed(tmp_path / "executed")["03-error-logs"]
    note = nb.printed("print(\n    kit.analyses.resolver_logs.timing_note(core.errors")
    assert note.startswith(f"None of the {errors} upstream errors has a timestamp")
    assert "kubectl logs --timestamps" in note
    # no empty chart: a sentence instead, and empty per-bin tables
    cell = "errors_per_bin = kit.sources.coredns.error_counts("
    assert not nb.has_chart(cell)
    assert nb.printed(cell).startswith("No upstream error with a timestamp")
    assert nb.frame("kit.analyses.resolver_logs.nonzero_bins(errors_per_bin") == []
    assert nb.frame("kit.analyses.resolver_logs.onset(errors_per_bin") == []
    # the totals still hold: every error is in the summary
    assert (
        sum(int(r["errors"]) for r in nb.frame("kit.analyses.resolver_logs.error_summary(core)"))
        == errors
    )
    assert "Traceback" not in (tmp_path / "r.html").read_text(encoding="utf-8")
