"""Inspektor Gadget DNS trace reader (kit.sources.gadget): JSON output of the image-based
trace_dns gadget and of the built-in trace dns gadget, in their documented formats
(tests/data/gadget; provenance in tests/data/PROVENANCE)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

import kit
from kit.errors import InputFormatError, KitWarning
from kit.schema import DNS_RECORDS_SCHEMA, GADGET_DNS_SCHEMA
from kit.sources.detect import detect
from kit.sources.gadget import read_gadget_dns

DATA = Path(__file__).resolve().parent / "data" / "gadget"
IMAGE = DATA / "trace_dns-image.jsonl"
BUILTIN = DATA / "trace-dns-builtin.json"


def _events(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def test_recognised() -> None:
    assert detect(IMAGE).kind == "gadget_dns"
    assert detect(BUILTIN).kind == "gadget_dns"
    assert list(GADGET_DNS_SCHEMA)[: len(DNS_RECORDS_SCHEMA)] == list(DNS_RECORDS_SCHEMA)


def test_image_gadget_pairs_queries_and_answers() -> None:
    r = read_gadget_dns(IMAGE)
    ev = _events(IMAGE)
    queries = [e for e in ev if e["qr"] == "Q"]
    answers = {e["id"]: e for e in ev if e["qr"] == "R"}
    assert r.records == len(ev) and r.rejected.is_empty() and r.records + r.other == r.lines
    assert r.dns.height == len(queries)
    for row, q in zip(r.dns.iter_rows(named=True), queries, strict=True):
        a = answers[q["id"]]
        assert row["client_ip"] == q["src"]["addr"] and row["client_port"] == q["src"]["port"]
        assert row["server_ip"] == q["dst"]["addr"] and row["server_port"] == 53
        assert row["dns_id"] == int(q["id"], 16)
        assert row["qname"] == q["name"].rstrip(".") and row["qtype"] == q["qtype"]
        assert row["latency_s"] == a["latency_ns_raw"] / 1e9  # the gadget's own measure
        assert row["answered"] and row["answers"] == a["num_answers"]
        assert (row["k8s_node"], row["k8s_namespace"], row["k8s_pod"]) == (
            q["k8s"]["node"],
            q["k8s"]["namespace"],
            q["k8s"]["podName"],
        )
        assert row["comm"] == q["proc"]["comm"] and row["events"] == 2
    # rcode names of the image gadget: Success -> NOERROR, NameError -> NXDOMAIN
    assert r.dns["rcode"].to_list() == ["NOERROR", "NOERROR", "NOERROR", "NXDOMAIN"]


def test_builtin_gadget_joins_one_query_seen_in_two_namespaces() -> None:
    r = read_gadget_dns(BUILTIN)
    ev = _events(BUILTIN)
    dns_events = [e for e in ev if e.get("type") == "normal"]
    assert r.records == len(dns_events) and r.other == len(ev) - len(dns_events)
    first = r.dns.row(0, named=True)
    same = [e for e in dns_events if e["id"] == "2e69"]
    assert first["events"] == len(same) == 4
    q_ts = min(e["timestamp"] for e in same if e["qr"] == "Q")
    assert first["ts"].timestamp() == pytest.approx(q_ts / 1e9, abs=1e-6)
    lat = next(e["latency"] for e in same if "latency" in e)
    assert first["latency_s"] == lat / 1e9
    assert first["k8s_pod"] == "mypod"  # from the pod's event, not the host's empty k8s
    nx = r.dns.filter(qname="mcr.microsoft.de").row(0, named=True)
    assert nx["rcode"] == "NXDOMAIN"
    lost = r.dns.filter(qname="unanswered.example").row(0, named=True)
    assert lost["answered"] is False and lost["latency_s"] is None and lost["rcode"] is None


def test_latency_from_times_when_the_gadget_gives_none(tmp_path: Path) -> None:
    ev = _events(IMAGE)[:2]
    for e in ev:
        e["latency_ns_raw"] = 0
    p = tmp_path / "t.json"
    p.write_text("\n".join(json.dumps(e) for e in ev) + "\n")
    row = read_gadget_dns(p).dns.row(0, named=True)
    assert row["latency_s"] == (row["ts_response"] - row["ts"]) / timedelta(seconds=1) > 0


def test_pretty_printed_and_array_output(tmp_path: Path) -> None:
    ev = _events(IMAGE)
    pretty = tmp_path / "pretty.json"
    pretty.write_text("\n".join(json.dumps(e, indent=2) for e in ev) + "\n")
    array = tmp_path / "array.json"
    array.write_text(json.dumps(ev))
    base = read_gadget_dns(IMAGE).dns.drop("source", "line_no")
    for p in (pretty, array):
        assert detect(p).kind == "gadget_dns", p
        assert read_gadget_dns(p).dns.drop("source", "line_no").equals(base)


def test_bad_input(tmp_path: Path) -> None:
    lines = IMAGE.read_text().splitlines()
    p = tmp_path / "t.json"
    p.write_text("\n".join([lines[0], '{"qr":"Q","name":"x.","qtype":"A","id":"zz"}', *lines[1:]]))
    with pytest.warns(KitWarning, match="1 unreadable Inspektor Gadget event"):
        r = read_gadget_dns(p)
    assert r.rejected["line_no"].to_list() == [2] and r.dns.height == 4
    with pytest.raises(InputFormatError) as exc:
        read_gadget_dns(p, strict=True)
    assert exc.value.line == 2
    q = tmp_path / "cut.json"
    q.write_text(lines[0] + "\n" + lines[1][:50] + "\n" + "\n".join(lines[2:]) + "\n")
    with pytest.warns(KitWarning):  # a cut line is rejected, reading goes on at the next line
        r2 = read_gadget_dns(q)
    assert r2.rejected["line_no"].to_list() == [2] and r2.records + r2.other == r2.lines
    assert r2.dns.height == 4  # the pair with the cut answer is an unanswered query
    with pytest.raises(InputFormatError) as exc2:
        read_gadget_dns(q, strict=True)
    assert exc2.value.line == 2
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json at all\n")
    with pytest.raises(InputFormatError) as exc3:
        read_gadget_dns(garbage)
    assert exc3.value.line == 1
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(InputFormatError, match="not a DNS trace event"):
        read_gadget_dns(other)


def test_lazy_export() -> None:
    assert kit.read_gadget_dns is read_gadget_dns


def test_reading_is_linear_in_the_events(tmp_path: Path) -> None:
    """Each JSON value's line number was counted from the start of the text (quadratic: 50,000
    events did not finish in 10 minutes); 20,000 events now read with every one paired."""
    q, a = _events(IMAGE)[:2]
    out = []
    for i in range(10_000):
        port = 1024 + i % 60000
        out.append(json.dumps(dict(q, id=format(i, "04x"), src=dict(q["src"], port=port))))
        out.append(json.dumps(dict(a, id=format(i, "04x"), dst=dict(a["dst"], port=port))))
    p = tmp_path / "big.json"
    p.write_text("\n".join(out) + "\n")
    r = read_gadget_dns(p)
    assert r.records == 20_000 and r.dns.height == 10_000 and r.dns["answered"].all()


def test_fuzz_findings_are_rejects_not_tracebacks(tmp_path: Path) -> None:
    """Mutation-fuzz findings: a port beyond 65535 broke the frame (polars ComputeError), a
    timestamp beyond time_t raised OverflowError, a huge latency int-to-float overflow."""
    ev = _events(IMAGE)
    bad_port = dict(ev[0], src=dict(ev[0]["src"], port=65536))
    bad_time = dict(ev[2], timestamp="", timestamp_raw=10**30)
    bad_lat = dict(ev[3], latency_ns_raw=10**400)
    p = tmp_path / "t.json"
    p.write_text(
        "\n".join(json.dumps(e) for e in [bad_port, ev[1], bad_time, bad_lat, *ev[4:]]) + "\n"
    )
    with pytest.warns(KitWarning, match="3 unreadable"):
        r = read_gadget_dns(p)
    assert r.rejected["line_no"].to_list() == [1, 3, 4]
    assert r.records == len(ev) and r.dns.height == 3  # an orphan answer, two pairs
