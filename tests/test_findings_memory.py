"""conntrack-race, ndots-search-expansion, truncation: bounded memory, the same results (issue 16).

- The checks are compared with brute-force references written here from their docstrings' rules
  (plain Python over the rows) on the sample, the lab scenarios, the real captures of ../shared
  and a synthetic capture where the race fires.
- A stub that asks one name from one fixed port 20,000 times (A and AAAA): the old join paired
  every A with every AAAA of that socket and name (400 M pairs, tens of gigabytes); the bucketed
  join pairs each A with the AAAA queries of its ``pair_within_s`` window (subprocess, address
  space capped so that the old code fails fast instead of taking the machine).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.findings.checks_logs import ndots_expansion_result
from kit.findings.checks_transport import conntrack_race_result, truncation_result
from kit.sources.capture import DNS_SCHEMA, META_SCHEMA, PACKETS_SCHEMA, TCP_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "data" / "scenarios"
SHARED = ROOT.parent / "shared" / "fixtures" / "pcaps"


def _captures() -> list[Path]:
    runs = [ROOT / "data" / "sample", *sorted(p for p in SCENARIOS.iterdir() if p.is_dir())]
    paths = [r / "captures" for r in runs if (r / "captures").is_dir()]
    if SHARED.is_dir():
        paths += sorted(p for p in SHARED.iterdir() if p.suffix in {".pcap", ".pcapng"})
    return paths


def _wait(r: dict) -> float | None:
    if r["answered"]:
        return r["latency_s"]
    if r["censored"] is False:
        return math.inf
    return None


def _race_reference(dns: pl.DataFrame, within_s: float = 0.01, late_s: float = 4.5) -> tuple:
    """(pairs, sorted late pairs) by the docstring's rule: same capture, client ip and port,
    server, name (case-insensitive), one A and one AAAA over UDP at most ``within_s`` apart; late
    when one answer took ``late_s`` or more (or never came, uncensored) and the other < 1 s."""
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: {"A": [], "AAAA": []})
    for r in dns.iter_rows(named=True):
        if r["transport"] != "udp" or r["qtype"] not in ("A", "AAAA") or r["qname"] is None:
            continue
        k = (r["capture"], r["client_ip"], r["client_port"], r["server_ip"], r["qname"].lower())
        groups[k][r["qtype"]].append(r)
    pairs, late = 0, []
    for k, g in groups.items():
        for a in g["A"]:
            for b in g["AAAA"]:
                if a["ts"] is None or b["ts"] is None:
                    continue
                if abs((a["ts"] - b["ts"]).total_seconds()) > within_s:
                    continue
                pairs += 1
                wa, wb = _wait(a), _wait(b)
                if wa is None or wb is None:
                    continue
                if (wa >= late_s and wb < 1.0) or (wb >= late_s and wa < 1.0):
                    late.append((k[0], a["ts"], k[1], k[2], a["qname"], wa, wb))
    return pairs, sorted(late, key=lambda x: (x[1], x[0], x[2], x[3], x[4]))


def _ndots_reference(dns: pl.DataFrame, dom: str = "cluster.local") -> tuple[int, dict]:
    """(expansions, {base: count}) by the docstring's rule, one row at a time."""
    rows = [r for r in dns.iter_rows(named=True) if r["rcode"] is not None]
    low = [r["qname"].lower().rstrip(".") if r["qname"] is not None else None for r in rows]
    asked = set(low)
    per: dict[str, int] = defaultdict(int)
    for r, n in zip(rows, low, strict=True):
        if r["rcode"] != "NXDOMAIN" or n is None:
            continue
        base = None
        if n.endswith("." + dom):
            d = re.escape(dom)
            cands = []
            for pat in (rf"\.[^.]+\.svc\.{d}$", rf"\.svc\.{d}$", rf"\.{d}$"):
                m = re.search(pat, n)
                if m and m.start() > 0:
                    cands.append(n[: m.start()])
            base = next((c for c in cands if c in asked), cands[0] if cands else None)
        else:
            labels = n.split(".")
            for k in range(len(labels) - 1, 0, -1):
                p = ".".join(labels[:k])
                if p in asked and "." in p:
                    base = p
                    break
        if base is not None:
            per[base] += 1
    return sum(per.values()), dict(per)


def _truncation_reference(dns: pl.DataFrame, within_s: float = 5.0) -> tuple[int, int]:
    """(truncated UDP answers, those retried over TCP) by the docstring's rule: a TCP query of
    the same capture, client, server, name (case-insensitive) and type within ``within_s``
    seconds after the truncated answer's query; one count per (capture, client, name, type, ts)."""
    tcp: dict[tuple, list] = defaultdict(list)
    for r in dns.iter_rows(named=True):
        if r["transport"] == "tcp" and r["qname"] is not None:
            k = (r["capture"], r["client_ip"], r["server_ip"], r["qname"].lower(), r["qtype"])
            tcp[k].append(r["ts"])
    tc, retried = 0, set()
    for r in dns.iter_rows(named=True):
        if r["transport"] != "udp" or not r["tc"]:
            continue
        tc += 1
        if r["qname"] is None or r["ts"] is None:
            continue
        k = (r["capture"], r["client_ip"], r["server_ip"], r["qname"].lower(), r["qtype"])
        if any(t is not None and 0 <= (t - r["ts"]).total_seconds() <= within_s for t in tcp[k]):
            retried.add((k[0], k[1], k[3], k[4], r["ts"]))
    return tc, len(retried)


def _synthetic_race() -> kit.Capture:
    """Pods asking A+AAAA from one socket; every 7th pair loses its AAAA answer for 5 s, every
    11th its A answer for good; some names in upper case, a second capture with the same sockets."""
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(600):
        ts = t0 + dt.timedelta(milliseconds=37 * i)
        name = f"svc{i % 13}.Example.com" if i % 5 else f"SVC{i % 13}.example.com"
        port = 30000 + i % 40  # sockets reused: the same port asks the same name again later
        cap = "node-a" if i % 3 else "node-b"
        for qtype, lag_ms, lat in (
            ("A", 0, None if i % 11 == 0 else 0.002),
            ("AAAA", 1 + i % 9, 5.0 if i % 7 == 0 else 0.003),
        ):
            rows.append(
                {
                    "ts": ts + dt.timedelta(milliseconds=lag_ms),
                    "latency_s": lat,
                    "answered": lat is not None,
                    "censored": False,
                    "client_ip": f"10.1.0.{i % 4}",
                    "client_port": port,
                    "server_ip": "169.254.20.10",
                    "transport": "udp",
                    "qname": name,
                    "qtype": qtype,
                    "rcode": "NOERROR" if lat is not None else None,
                    "capture": cap,
                }
            )
    dns = pl.DataFrame(rows).with_columns(
        [pl.lit(None).alias(c) for c in DNS_SCHEMA if c not in rows[0]]
    )
    dns = dns.cast(dict(DNS_SCHEMA)).select(list(DNS_SCHEMA))
    return kit.Capture(
        dns=dns,
        tcp=pl.DataFrame(schema=TCP_SCHEMA),
        packets=pl.DataFrame(schema=PACKETS_SCHEMA),
        meta=pl.DataFrame(schema=META_SCHEMA),
    )


def _check_race(cap: kit.Capture) -> int:
    pairs, late = _race_reference(cap.dns)
    r = conntrack_race_result(cap, min_pairs=1)
    if cap.dns.is_empty():
        return 0
    assert r.numbers["pairs"] == pairs
    assert r.numbers["late_pairs"] == len(late)
    if late:
        assert r.finding is not None
        ex = r.finding.evidence["examples"]
        assert [tuple(x) for x in ex.iter_rows()] == late[:10]
    return pairs


def test_conntrack_race_matches_the_reference_on_a_synthetic_capture() -> None:
    cap = _synthetic_race()
    assert _check_race(cap) > 0
    r = conntrack_race_result(cap)
    assert r.finding is not None and r.numbers["late_pairs"] >= 100


@pytest.mark.parametrize("path", _captures(), ids=lambda p: p.parent.name + "/" + p.name)
def test_the_checks_match_the_references_on_real_captures(path: Path) -> None:
    cap = kit.read_capture(path, progress=False)
    _check_race(cap)
    tc, retried = _truncation_reference(cap.dns)
    t = truncation_result(cap)
    if tc:
        assert (t.numbers["truncated"], t.numbers["retried_over_tcp"]) == (tc, retried)
    want, per = _ndots_reference(cap.dns)
    r = ndots_expansion_result(capture=cap, min_share=0.0, min_queries=0)
    if cap.dns.is_empty():
        return
    assert r.numbers["expansions"] == want
    assert r.numbers["answers"] == cap.dns.filter(pl.col("rcode").is_not_null()).height
    if r.finding is not None:
        got = r.finding.evidence["per_name"]
        assert {b: n for b, n in got.select("base", "expansions").iter_rows()} == {
            b: per[b] for b in got["base"]
        }
        assert got.height == min(20, len(per))


MEASURE = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
import datetime as dt
import polars as pl
import kit
from kit.sources.capture import DNS_SCHEMA, TCP_SCHEMA, PACKETS_SCHEMA, META_SCHEMA
from kit.findings.checks_transport import conntrack_race_result, truncation_result

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

n = 20_000  # one stub, one fixed port, one name: A then AAAA 1 ms later, every 20 ms
t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ts = [t0 + dt.timedelta(milliseconds=20 * i + (1 if q == "AAAA" else 0))
      for i in range(n) for q in ("A", "AAAA")]
lat = [5.0 if (i // 2) % 100 == 0 and i % 2 else 0.001 for i in range(2 * n)]
dns = pl.DataFrame({
    "ts": ts, "latency_s": lat, "answered": True, "censored": False,
    "client_ip": "10.1.0.7", "client_port": 5353, "server_ip": "169.254.20.10",
    "server_port": 53, "transport": "udp", "qname": "hot.example.com",
    "qtype": ["A", "AAAA"] * n, "rcode": "NOERROR", "capture": "node",
}).with_columns([pl.lit(None).alias(c) for c in
                 ("ts_response", "dns_id", "tc", "answers", "retransmissions", "tcp_stream",
                  "frame_query", "frame_response", "opcode")])
dns = dns.cast(dict(DNS_SCHEMA)).select(list(DNS_SCHEMA))
cap = kit.Capture(dns=dns, tcp=pl.DataFrame(schema=TCP_SCHEMA),
                  packets=pl.DataFrame(schema=PACKETS_SCHEMA), meta=pl.DataFrame(schema=META_SCHEMA))
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
r = conntrack_race_result(cap)
print(json.dumps({"extra": status("VmHWM") - base, "frames": dns.estimated_size(), **r.numbers}))
"""


def test_conntrack_race_memory_does_not_grow_with_name_repetition() -> None:
    """20,000 A/AAAA pairs of one name from one port: the old join built 20,000 x 20,000 rows
    (gigabytes, fails under the cap); the bucketed one 20,000 pairs (a few MiB)."""
    limit = 3 << 30  # address space: polars needs ~1 GB of mappings at rest; the old code > 10 GB
    r = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT), str(limit)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert d["pairs"] == 20_000 and d["late_pairs"] == 200, d
    assert d["extra"] < 200 << 20, d  # bytes on top of the frame (measured: a few MiB)
