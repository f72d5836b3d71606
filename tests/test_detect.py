"""kit.sources.detect: the kind of every shared fixture file, hand-made cases, junk, gzip, and real tools.

Expected kinds of the shared files are justified by PROVENANCE.tsv (quoted per entry) and, for
captures, by capinfos's own "File type"; the unbound/NSD configs are validated by
unbound-checkconf / nsd-checkconf, and unbound logs come from a real unbound.
"""

from __future__ import annotations

import gzip
import lzma
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import require_tool

from kit.schema import check_schema
from kit.sources.detect import (
    DETECT_SCHEMA,
    HEAD_BYTES,
    ArtefactKind,
    detect,
    detect_kind,
    detect_kinds,
)

# every file in ../shared/fixtures -> kind, with the PROVENANCE.tsv / README.md words that say so
SHARED_KINDS: dict[str, str] = {
    # "capinfos: pcap/..." / "capinfos: pcapng/..." in PROVENANCE.tsv for all 14
    **{
        f"pcaps/{n}": "capture"
        for n in (
            "chrissanders_dns_lab.pcapng",
            "chrissanders_dns_tcp.pcapng",
            "chrissanders_nowebaccess1.pcapng",
            "dnscap_dns.pcap",
            "dnscap_dnso1tcp-midmiss.pcap",
            "dnscap_dnso1tcp.pcap",
            "dnscap_dnsotcp-many1pkt.pcap",
            "dnscap_sll2.pcap",
            "dnsjit_tcp-response-with-trailing-junk.pcap",
            "ndpi_KakaoTalk_chat.pcap",
            "ndpi_dns-google-nsid.pcapng",
            "ndpi_dns_fragmented.pcap",
            "suricata_dns-tcp-multirequest-buffer.pcap",
            "zeek_dns-edns-ecs.pcap",
        )
    },
    # "8 lines extracted verbatim from CoreDNS docs: canonical query-log line ..."
    "logs/coredns_repo_readme_examples.log": "coredns_log",
    # "3 Docker json-file/Kubernetes-enriched JSON lines wrapping CoreDNS query-log lines"
    "logs/elastic_beats_coredns-json.log": "coredns_log",
    # "2 CoreDNS log-plugin lines with RFC3339 timestamp prefixes"
    "logs/elastic_beats_coredns.log": "coredns_log",
    # "8 errors-plugin lines"
    "logs/elastic_integrations_test-coredns-error.log": "coredns_log",
    # "3 Kubernetes/Docker JSON-wrapped query-log lines"
    "logs/elastic_integrations_test-coredns-json.log": "coredns_log",
    # "9 query-log lines"
    "logs/elastic_integrations_test-coredns.log": "coredns_log",
    # "Line-range -> issue URL map" (a TSV without a time column): not an artefact
    "logs/github_issue_excerpts.sources.tsv": "unknown",
    # "44 verbatim errors-plugin/startup lines"
    "logs/github_issue_excerpts_errors.log": "coredns_log",
    # "23 verbatim log-plugin lines"
    "logs/github_issue_excerpts_querylog.log": "coredns_log",
    # "8-line CoreDNS 1.2.0 startup + query excerpt"
    "logs/k8s_website_dns-debugging-resolution_excerpt.log": "coredns_log",
    # "Real CoreDNS 1.1.0 (go1.10) production-looking scrape" / "Real CoreDNS 1.6.9 /metrics scrape" ...
    "metrics/datadog_coredns_v1.1.0_metrics.prom": "metrics_exposition",
    "metrics/netdata_coredns_no_version_no_load.prom": "metrics_exposition",
    "metrics/netdata_coredns_v1.6.9_some_load.prom": "metrics_exposition",
    "metrics/netdata_coredns_v1.7.0_some_load.prom": "metrics_exposition",
    # "Modern Grafana ... panel 'Download CSV'", "Grafana 5.x/6.x ... Excel-style export", ...
    "metrics/grafana_export_geugenm_seriestocolumns_formatted_crlf_bom.csv": "grafana_csv",
    "metrics/grafana_export_heekof_series_rows.csv": "grafana_csv",
    "metrics/grafana_export_mpawlik_columns.csv": "grafana_csv",
    "metrics/grafana_export_tenst_excel_columns.csv": "grafana_csv",
    # "Full /api/v1/query_range envelope", "query_range matrix ..."
    "metrics/grafana_range_infinity.result.json": "prometheus_api_json",
    "metrics/grafana_range_missing.result.json": "prometheus_api_json",
    "metrics/grafana_range_nan.result.json": "prometheus_api_json",
    "metrics/grafana_range_simple.result.json": "prometheus_api_json",
    # "Real Prometheus query_range output ... saved as the bare data.result list (NO envelope)"
    "metrics/promapiclient_up_matrix_result_201907281200.json": "prometheus_api_json",
    # README.md: "Verbatim NodeLocal DNSCache Corefile templates" (the collection file)
    "nodelocaldns_corefiles.txt": "corefile",
    # the collection's own documentation and checksums: not artefacts
    "README.md": "unknown",
    "PROVENANCE.tsv": "unknown",
    "SHA256SUMS": "unknown",
    # Prometheus's promqltest scripts (PROVENANCE.md there): PromQL test cases, no artefact
    "promqltest/PROVENANCE.md": "unknown",
    **{
        f"promqltest/v2.42.0/{n}.test": "unknown"
        for n in (
            "aggregators",
            "at_modifier",
            "collision",
            "functions",
            "histograms",
            "literals",
            "operators",
            "selectors",
            "staleness",
            "subquery",
            "trig_functions",
        )
    },
}

# tests/data/detect and tests/data/corefile -> kind (see tests/data/detect/README.md)
LOCAL_KINDS: dict[str, str] = {
    "detect/unbound_epoch_time.log": "unbound_log",
    "detect/unbound_ascii_time.log": "unbound_log",
    "detect/unbound_syslog.log": "unbound_log",
    "detect/unbound.conf": "unbound_conf",
    "detect/nsd.conf": "nsd_conf",
    "detect/run.json": "run_json",
    "detect/coredns_cri.log": "coredns_log",
    "detect/coredns_kubectl_timestamps.log": "coredns_log",
    "detect/coredns_docker_json.log": "coredns_log",
    "detect/coredns_journald_compose.log": "coredns_log",
    "detect/grafana_dataframe.json": "grafana_json",
    "detect/prom_vector_list.json": "prometheus_api_json",
    "detect/prom_data_no_envelope.json": "prometheus_api_json",
    "detect/notes.txt": "unknown",
    "detect/whitespace_only.txt": "unknown",
    "detect/json_other.json": "unknown",
    "detect/json_cut_short.json": "unknown",
    "detect/README.md": "unknown",
    "corefile/k8s_addon_nodelocaldns.Corefile": "corefile",
    "corefile/kops_before_9917.Corefile": "corefile",  # starts with "{{" yet is not JSON
    "corefile/kops_head.Corefile": "corefile",  # starts with "  {{- if"
    "corefile/node_cache_stubdomain_block.Corefile": "corefile",
    "corefile/braceless_single_block.Corefile": "corefile",
    "corefile/edge_syntax.Corefile": "corefile",
    "corefile/k8s_addon_configmap.yaml": "corefile",  # ConfigMap manifest with a Corefile key
    "corefile/node_cache_startup.log": "coredns_log",  # a log that prints a Corefile
    "corefile/with_import/custom/upstream.override": "unknown",  # a fragment, not a Corefile
}


# ---------------------------------------------------------------------------------------------
# shared fixtures


def test_table_covers_every_shared_fixture(shared_fixtures: Path) -> None:
    on_disk = {
        p.relative_to(shared_fixtures).as_posix() for p in shared_fixtures.rglob("*") if p.is_file()
    }
    assert on_disk == set(SHARED_KINDS)


@pytest.mark.parametrize("rel", sorted(SHARED_KINDS))
def test_shared_fixture_kind(shared_fixtures: Path, rel: str) -> None:
    d = detect(shared_fixtures / rel)
    assert d.kind == SHARED_KINDS[rel], d.reason
    assert d.reason


def test_capture_kinds_agree_with_capinfos(shared_fixtures: Path) -> None:
    capinfos = require_tool("capinfos", "tshark")
    pcaps = sorted((shared_fixtures / "pcaps").iterdir())
    out = subprocess.run(
        [capinfos, "-t", "-M", *map(str, pcaps)], capture_output=True, text=True, check=True
    ).stdout
    types = dict(
        zip(
            [
                Path(x.split(":", 1)[1].strip()).name
                for x in out.splitlines()
                if x.startswith("File name:")
            ],
            [x.split(":", 1)[1].strip() for x in out.splitlines() if x.startswith("File type:")],
            strict=True,
        )
    )
    assert len(types) == len(pcaps) == 14
    for p in pcaps:
        d = detect(p)
        assert d.kind == "capture"
        # capinfos says "pcapng" or "pcap"; our reason names the same container
        assert d.reason.split(",")[0] == types[p.name], (p.name, d.reason, types[p.name])


def test_detect_kinds_over_shared_directories(shared_fixtures: Path) -> None:
    dirs = ("pcaps", "logs", "metrics")
    df = detect_kinds([shared_fixtures / d for d in dirs])
    check_schema(df, DETECT_SCHEMA)
    got = {
        Path(p).relative_to(shared_fixtures).as_posix(): k
        for p, k in zip(df["path"], df["kind"], strict=True)
    }
    assert got == {k: v for k, v in SHARED_KINDS.items() if k.split("/")[0] in dirs}
    assert df["reason"].str.len_chars().min() > 0  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# hand-made cases


@pytest.mark.parametrize("rel", sorted(LOCAL_KINDS))
def test_local_fixture_kind(data_dir: Path, rel: str) -> None:
    d = detect(data_dir / rel)
    assert d.kind == LOCAL_KINDS[rel], d.reason


def test_conf_fixtures_are_real_configs(data_dir: Path) -> None:
    # the expected kinds rest on the real tools accepting the files
    ub = require_tool("unbound-checkconf", "unbound")
    nsd = require_tool("nsd-checkconf", "nsd")
    r = subprocess.run([ub, str(data_dir / "detect/unbound.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([nsd, str(data_dir / "detect/nsd.conf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # and each is rejected by the other tool, so the two kinds really differ
    r = subprocess.run([nsd, str(data_dir / "detect/unbound.conf")], capture_output=True, text=True)
    assert r.returncode != 0


def test_reasons_say_what_was_seen(data_dir: Path, shared_fixtures: Path) -> None:
    assert detect(shared_fixtures / "pcaps/dnscap_dns.pcap").reason == (
        "pcap, little-endian, microsecond timestamps (magic d4c3b2a1)"
    )
    assert detect(data_dir / "detect/unbound_epoch_time.log").reason == (
        # 16 lines in the file, every one "[epoch] unbound[pid:0] ...: " (wc -l + grep -c)
        "16 of 16 non-blank lines are unbound[pid:thread] log lines"
    )
    # 9 lines, each ends with the quoted opcode "0" or not; all 9 are query lines (PROVENANCE)
    assert detect(shared_fixtures / "logs/elastic_integrations_test-coredns.log").reason == (
        "9 of 9 non-blank lines are CoreDNS log lines (9 query-log lines)"
    )
    assert detect(data_dir / "detect/whitespace_only.txt").reason == (
        "only white space (6 characters)"
    )
    assert (
        "Excel 'sep=;' line"
        in detect(shared_fixtures / "metrics/grafana_export_tenst_excel_columns.csv").reason
    )
    assert (
        "JSON longer than 65536 bytes"
        in detect(
            shared_fixtures / "metrics/promapiclient_up_matrix_result_201907281200.json"
        ).reason
    )


def test_kind_is_a_string_enum(data_dir: Path) -> None:
    k = detect_kind(data_dir / "detect/run.json")
    assert k is ArtefactKind.RUN_JSON
    assert k == "run_json" and isinstance(k, str)
    assert {m.value for m in ArtefactKind} == {
        "capture",
        "coredns_log",
        "unbound_log",
        "metrics_exposition",
        "prometheus_api_json",
        "grafana_csv",
        "grafana_json",
        "corefile",
        "unbound_conf",
        "nsd_conf",
        "run_json",
        "dnstap",
        "k8s_snapshot",
        # node evidence, Zeek and Inspektor Gadget DNS records (kit.sources.node/.zeek/.gadget)
        "nstat",
        "conntrack_stats",
        "ethtool_stats",
        "ip_link_stats",
        "zeek_dns_log",
        "gadget_dns",
        "unknown",
    }


# ---------------------------------------------------------------------------------------------
# junk, compression, byte orders


def test_junk_is_unknown_with_a_reason(tmp_path: Path) -> None:
    rng = random.Random(6)
    cases = {
        "empty": (b"", "empty file (0 bytes)"),
        "random": (bytes(rng.randrange(256) for _ in range(4096)), "binary data:"),
        # high bytes only: no NUL, but not UTF-8 either
        "latin": (bytes(rng.randrange(128, 256) for _ in range(4096)), "binary data:"),
        "xz": (lzma.compress(b"[INFO] x\n"), "xz-compressed"),
        "elf": (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "an ELF executable"),
        "short_pcap": (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap magic but only 6 bytes"),
        "gzip_junk": (b"\x1f\x8b\x08\x00" + b"junk" * 10, "gzip: corrupt gzip data"),
    }
    for name, (blob, reason) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        d = detect(p)
        assert d.kind == ArtefactKind.UNKNOWN, (name, d)
        assert d.reason.startswith(reason), (name, d.reason)
    d = detect(tmp_path)
    assert (d.kind, d.reason) == (ArtefactKind.UNKNOWN, "is a directory, not a file")
    with pytest.raises(FileNotFoundError):
        detect_kind(tmp_path / "missing")


def test_gzip_is_looked_through(tmp_path: Path, shared_fixtures: Path) -> None:
    for rel, kind in [
        ("logs/github_issue_excerpts_querylog.log", "coredns_log"),
        ("metrics/netdata_coredns_v1.7.0_some_load.prom", "metrics_exposition"),
        ("metrics/promapiclient_up_matrix_result_201907281200.json", "prometheus_api_json"),
        ("pcaps/dnscap_dns.pcap", "capture"),
    ]:
        data = (shared_fixtures / rel).read_bytes()
        p = tmp_path / "renamed.bin"  # the name says nothing
        p.write_bytes(gzip.compress(data))
        d = detect(p)
        assert d.kind == kind, (rel, d.reason)
        assert d.reason.startswith("gzip: ")
        # a cut gzip stream still gives its kind from what decompressed
        half = gzip.compress(data)
        p.write_bytes(half[: max(200, len(half) // 2)])
        assert detect(p).kind == kind, rel


def test_pcap_byte_orders_and_resolutions(tmp_path: Path, shared_fixtures: Path) -> None:
    capinfos = require_tool("capinfos", "tshark")
    editcap = require_tool("editcap", "tshark")
    # big-endian microsecond pcap with one 60-byte Ethernet frame, written by hand
    frame = b"\xff" * 12 + b"\x08\x00" + b"\x00" * 46
    be = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    be += struct.pack(">IIII", 1700000000, 5, len(frame), len(frame)) + frame
    (tmp_path / "be.pcap").write_bytes(be)
    subprocess.run(
        [
            editcap,
            "-F",
            "nsecpcap",
            str(shared_fixtures / "pcaps/dnscap_dns.pcap"),
            str(tmp_path / "ns.pcap"),
        ],
        check=True,
        capture_output=True,
    )
    info = subprocess.run(
        [capinfos, "-t", "-c", "-M", str(tmp_path / "be.pcap"), str(tmp_path / "ns.pcap")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Number of packets:   1" in info  # capinfos reads the hand-made one as a valid pcap
    assert "File type:           nsecpcap" in info
    assert detect(tmp_path / "be.pcap").reason.startswith("pcap, big-endian, microsecond")
    assert detect(tmp_path / "ns.pcap").reason.startswith("pcap, little-endian, nanosecond")


def test_utf16_bom_text_is_read(tmp_path: Path, shared_fixtures: Path) -> None:
    text = (shared_fixtures / "logs/elastic_beats_coredns.log").read_text()
    p = tmp_path / "x"
    p.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert detect(p).kind == "coredns_log"


def test_only_the_head_is_read(tmp_path: Path, shared_fixtures: Path) -> None:
    # A FIFO whose writer offers 4x HEAD_BYTES: detection must stop reading after the head
    # (the writer then hits a broken pipe) and decide from the head alone.
    line = (shared_fixtures / "logs/elastic_integrations_test-coredns.log").read_bytes()
    line = line.splitlines(keepends=True)[0]
    blob = line * (4 * HEAD_BYTES // len(line) + 1)
    fifo = tmp_path / "pipe"
    import os

    os.mkfifo(fifo)
    result: dict[str, object] = {}

    def writer() -> None:
        sent = 0
        try:
            with open(fifo, "wb") as fh:
                for i in range(0, len(blob), 4096):
                    fh.write(blob[i : i + 4096])
                    fh.flush()
                    sent += 4096
        except BrokenPipeError:
            result["broken_after"] = sent

    t = threading.Thread(target=writer)
    t.start()
    d = detect(fifo)
    t.join(timeout=10)
    assert d.kind == "coredns_log"
    assert "broken_after" in result  # the reader hung up before the writer was done
    assert HEAD_BYTES <= int(result["broken_after"]) < len(blob)  # type: ignore[call-overload]


def test_head_decides_even_if_the_rest_is_junk(tmp_path: Path, shared_fixtures: Path) -> None:
    prom = (shared_fixtures / "metrics/datadog_coredns_v1.1.0_metrics.prom").read_bytes()
    body = (prom * (HEAD_BYTES // len(prom) + 1))[:HEAD_BYTES]
    p = tmp_path / "scrape"
    p.write_bytes(body + b"\x00\x01\x02" * 1000)
    assert detect(p).kind == "metrics_exposition"
    p.write_bytes(b"\x00\x01\x02" * 10 + body)
    assert detect(p).kind == "unknown"


# ---------------------------------------------------------------------------------------------
# a log written by a real unbound


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.server
def test_log_of_a_real_unbound(tmp_path: Path) -> None:
    unbound = require_tool("unbound", "unbound")
    dig = require_tool("dig", "dnsutils")
    port = _free_port()
    logf = tmp_path / "unbound.log"
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        "server:\n"
        "    interface: 127.0.0.1\n"
        f"    port: {port}\n"
        "    do-ip6: no\n"
        '    chroot: ""\n'
        '    username: ""\n'
        f'    directory: "{tmp_path}"\n'
        '    pidfile: ""\n'
        "    do-daemonize: no\n"
        "    use-syslog: no\n"
        f'    logfile: "{logf}"\n'
        "    log-queries: yes\n"
        "    log-replies: yes\n"
        '    module-config: "iterator"\n'
        '    local-zone: "test." static\n'
        '    local-data: "a.test. 60 IN A 127.0.0.10"\n'
        "remote-control:\n"
        "    control-enable: no\n"
    )
    proc = subprocess.Popen([unbound, "-d", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        answer = ""
        deadline = time.monotonic() + 30  # wait until it answers (bounded: 30 s on a busy host)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"unbound exited with {proc.returncode}: {err[-2000:]}")
            r = subprocess.run(
                [
                    dig,
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "@127.0.0.1",
                    "-p",
                    str(port),
                    "a.test",
                    "A",
                ],
                capture_output=True,
                text=True,
            )
            # before unbound listens, dig prints ";; communications error ..." on stdout: not an
            # answer, so keep waiting
            answer = "" if r.stdout.lstrip().startswith(";;") else r.stdout.strip()
            if answer:
                break
            time.sleep(0.1)
        assert answer == "127.0.0.10"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert detect_kind(logf) == "unbound_log"
    assert detect_kind(conf) == "unbound_conf"
    assert shutil.which("unbound") or unbound  # the tool was really there


def test_detect_kinds_frame_for_a_directory(data_dir: Path) -> None:
    df = detect_kinds(data_dir / "detect")
    check_schema(df, DETECT_SCHEMA)
    got = dict(zip([Path(p).name for p in df["path"]], df["kind"], strict=True))
    want = {Path(k).name: v for k, v in LOCAL_KINDS.items() if k.startswith("detect/")}
    assert got == want
    assert df["path"].to_list() == sorted(df["path"].to_list())
    assert df.filter(pl.col("kind") == "unknown").height == 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("blob", "reason_start"),
    [
        (b"a" * 70000, "text (1 non-blank lines) of no known kind"),
        (b"a" * 60000 + b' - 1 "A IN x udp', "text (1 non-blank lines) of no known kind"),
        (b"{" * 70000, "JSON document larger than 65536 bytes"),
        (b"[" * 30000, "starts like JSON but nests too deeply to read"),
        (b'{"a":' * 14000, "JSON document larger than 65536 bytes"),
        (b"x{" + b"}" * 60000 + b" z", "text (1 non-blank lines) of no known kind"),
        (b'"' * 70000, "text (1 non-blank lines) of no known kind"),
    ],
)
def test_hostile_content_stays_unknown(tmp_path: Path, blob: bytes, reason_start: str) -> None:
    # Long lines without structure, runaway nesting: no regex blow-up, no RecursionError
    # (the timeout catches a quadratic regression; nothing here asserts a duration)
    p = tmp_path / "hostile"
    p.write_bytes(blob)
    d = detect(p)
    assert d.kind == "unknown"
    assert d.reason.startswith(reason_start), d.reason


# data/sample is a committed run of the incident lab (lab/core.py writes each file under a fixed
# name for a fixed purpose), so a file's name says what it is, independently of its content.
SAMPLE_PATTERNS: list[tuple[str, str]] = [
    ("captures/*.pcap", "capture"),  # tcpdump -w
    ("configs/unbound-*.conf", "unbound_conf"),  # Lab.unbound_conf()
    ("configs/nsd.conf", "nsd_conf"),  # the NSD upstream's config
    ("logs/unbound-node*.log", "unbound_log"),  # unbound logfile: with log-queries/log-replies
    ("prometheus/*.json", "prometheus_api_json"),  # Lab.export_prometheus(): query_range output
    ("run.json", "run_json"),  # the run metadata with "phases"
]


def test_lab_sample_run(repo_root: Path) -> None:
    sample = repo_root / "data" / "sample"
    if not (sample / "run.json").is_file():
        pytest.skip("data/sample not generated in this checkout")
    checked = 0
    for pattern, kind in SAMPLE_PATTERNS:
        files = sorted(sample.glob(pattern))
        assert files, pattern
        for f in files:
            d = detect(f)
            assert d.kind == kind, (f, d.reason)
            checked += 1
    # the other files (dnsperf output and query lists, nftables rules, unbound-control stats,
    # NSD's own log, prometheus.yml) are of no kind the kit reads
    others = ["dnsperf/*.txt", "configs/nftables.nft", "configs/prometheus.yml"]
    others += ["logs/unbound-stats-*.txt", "logs/nsd.log"]
    for f in sorted(f for p in others for f in sample.glob(p)):
        assert detect(f).kind == "unknown", f
        checked += 1
    assert checked >= 11


def test_big_run_json_is_recognised_from_its_head(tmp_path: Path, repo_root: Path) -> None:
    # a run.json longer than the head (many events) cannot be parsed, only sniffed
    import json

    run = {"lab": "dns-incident-kit incident lab", "parameters": {}, "phases": []}
    run["events"] = [{"ts": "2026-11-26T05:00:00Z", "event": "x" * 50} for _ in range(2000)]
    p = tmp_path / "run.json"
    p.write_text(json.dumps(run, indent=2))
    assert p.stat().st_size > HEAD_BYTES
    d = detect(p)
    assert (d.kind, d.reason) == ("run_json", 'lab run metadata (its "lab" key seen in the head)')
