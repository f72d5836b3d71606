"""Benchmark kit.read_capture on a synthetic 1 M-packet node-local DNS capture, against baselines.

Run: ``.venv/bin/python bench/bench_capture.py [--packets N] [--subset N] [--reps R]
[--source FILE] [--folder N] [--engine-subset N]``.
Everything is measured in this one run (the machine is shared, so only ratios mean something);
each case runs in its own child process so its peak memory (ru_maxrss of the Python process and of
its largest child, i.e. tshark) is its own. Cases:

- ``tshark -T fields``: bare tshark with the kit's display filter and fields, output to
  /dev/null (the floor the loader builds on; the baseline of perf-baselines.md case a1/a2).
- ``read_capture native``: ``engine="native"``, no cache: the C engine (kit/_fastcap.c) and the
  shared polars stages (pairing, TCP connections, packets, meta), with ``workers`` = CPUs: the
  file parsed by one thread per CPU at once (parallel within the file).
- ``read_capture native, one pass``: the same with ``workers=1`` (the C parser in one thread;
  the default).
- ``read_capture native, folder``: with ``--folder N``, N copies of the capture in one folder read
  in one call (``engine="native"``, one file per core at a time).
- ``read_capture cold``: the tshark engine end to end (``engine="tshark"``, capinfos, packet
  ranges of 250 k dissected by one tshark each, two at a time, polars, pairing, Parquet cache
  write into a fresh folder).
- ``read_capture one pass``: ``engine="tshark", chunk_packets=0``: one tshark over the whole
  file, no cache.
- ``read_capture cache``: the same call again, served from the Parquet cache (in-call time).
- ``pyshark FileCapture``: pyshark 0.6 default (PDML) over the first ``--subset`` packets, every
  packet's DNS layer touched (what a naive notebook does).
- ``read_capture subset``: the kit (tshark engine) on the same subset, for the like-for-like
  ratio.

``--bare-subset N`` runs bare tshark on the first N packets only (its rate is per packet; for 10 M
packets on a loaded machine). ``--engine-subset N`` runs the tshark-engine cases (cold, one pass, cache) on the first N
packets only (for 10 M-packet captures, where each takes many minutes); the table says so.

``--source FILE`` measures an existing capture instead (e.g. one written by
``../shared/tools/gen_pcap.py -n 2000000 -o node.pcap --seed 11``, the issue-16 capture).

The capture (written with struct, checksums not computed; tshark does not verify them by default):
pods 10.244.x.y query the NodeLocal cache 169.254.20.10:53 over UDP (A and AAAA); 92 % are cache
hits answered after ~150 µs, 1 % (for names of their own) are never answered, the rest are misses that the cache forwards
from 10.0.0.5 to 169.254.169.253:53 over a new TCP connection (SYN, SYN/ACK, ACK, query, answer,
ACK, FIN/ACK x2, ACK); 10 % of those connections retransmit their SYN 1-3 times (RTO 1 s, 2 s, 4 s),
which delays the client's answer by the same amount.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO))

POD_NET = "10.244"
CACHE, NODE, UP = bytes([169, 254, 20, 10]), bytes([10, 0, 0, 5]), bytes([169, 254, 169, 253])
NAMES = (
    [f"svc-{i}.ns-{i % 17}.svc.cluster.local" for i in range(300)]
    + [f"api{i}.example.com" for i in range(100)]
    + [f"s3.eu-west-{i % 3}.amazonaws.com" for i in range(30)]
    + ["github.com", "www.googleapis.com", "api.datadoghq.com"]
)


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def _ip(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    return (
        struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0)
        + src
        + dst
        + payload
    )


ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"


def _udp(src: bytes, sp: int, dst: bytes, dp: int, payload: bytes) -> bytes:
    return ETH + _ip(src, dst, 17, struct.pack(">HHHH", sp, dp, 8 + len(payload), 0) + payload)


def _tcp(sp: int, dp: int, seq: int, ack: int, flags: int, payload: bytes, out: bool) -> bytes:
    opts = b"\x02\x04\x05\xb4\x01\x01\x04\x02" if flags & 0x02 else b""
    hdr = struct.pack(
        ">HHIIBBHHH", sp, dp, seq, ack, ((20 + len(opts)) // 4) << 4, flags, 64240, 0, 0
    )
    src, dst = (NODE, UP) if out else (UP, NODE)
    return ETH + _ip(src, dst, 6, hdr + opts + payload)


def generate(path: Path, n_packets: int, seed: int = 1) -> dict[str, int]:
    """Write the synthetic capture; returns what it contains (counts by construction).

    Queries are generated until ``n_packets`` is reached, and the transactions already started are
    completed, so the file holds slightly more than ``n_packets`` packets (``stats["packets"]``).
    """
    rnd = random.Random(seed)
    q_templates = {
        (n, t): struct.pack(">HHHH", 1, 0, 0, 0) + _qname(n) + struct.pack(">HH", t, 1)
        for n in NAMES
        for t in (1, 28)
    }
    rdata = {
        1: struct.pack(">HHIH", 1, 1, 30, 4) + bytes(4),
        28: struct.pack(">HHIH", 28, 1, 30, 16) + bytes(16),
    }
    recs: list[tuple[int, bytes]] = []
    t = 1_700_000_000 * 1_000_000
    stats = {"queries": 0, "unanswered": 0, "tcp_conns": 0, "syn_retx": 0, "conns_with_retx": 0}
    port = 20000
    while len(recs) < n_packets:
        t += rnd.randint(40, 280)  # µs between client queries (~6 k queries/s)
        name = NAMES[min(int(rnd.paretovariate(1.2)) - 1, len(NAMES) - 1)]
        qtype = rnd.choice((1, 28))
        pod = bytes([10, 244, rnd.randint(0, 15), rnd.randint(2, 250)])
        sport = rnd.randint(32768, 60999)
        qid = rnd.getrandbits(16)
        u = rnd.random()
        if u < 0.01:  # never answered (and never forwarded): a name of its own
            body = struct.pack(">HHHH", 1, 0, 0, 0) + _qname(f"nx{stats['unanswered']}.invalid")
            body += struct.pack(">HH", qtype, 1)
        else:
            body = q_templates[(name, qtype)]
        query = struct.pack(">HH", qid, 0x0100) + body
        recs.append((t, _udp(pod, sport, CACHE, 53, query)))
        stats["queries"] += 1
        if u < 0.01:
            stats["unanswered"] += 1
            continue
        answer = (
            struct.pack(">HH", qid, 0x8180)
            + body[:2]
            + b"\x00\x01"
            + body[4:]
            + b"\xc0\x0c"
            + rdata[qtype]
        )
        if u < 0.93:
            recs.append(
                (t + int(rnd.lognormvariate(5.0, 0.3)), _udp(CACHE, 53, pod, sport, answer))
            )
            continue
        # miss: new upstream TCP connection
        stats["tcp_conns"] += 1
        port = port + 1 if port < 60999 else 20000
        isn, sisn = rnd.getrandbits(31), rnd.getrandbits(31)
        ts = t + 50
        recs.append((ts, _tcp(port, 53, isn, 0, 0x02, b"", True)))
        retx = rnd.choice((1, 1, 2, 3)) if rnd.random() < 0.10 else 0
        if retx:
            stats["conns_with_retx"] += 1
            stats["syn_retx"] += retx
        delay = 0
        for k in range(retx):
            delay += 1_000_000 << k
            recs.append((ts + delay, _tcp(port, 53, isn, 0, 0x02, b"", True)))
        ts += delay + 300
        recs.append((ts, _tcp(53, port, sisn, isn + 1, 0x12, b"", False)))
        recs.append((ts + 20, _tcp(port, 53, isn + 1, sisn + 1, 0x10, b"", True)))
        uq = struct.pack(">HH", rnd.getrandbits(16), 0x0100) + body
        uq = struct.pack(">H", len(uq)) + uq
        recs.append((ts + 40, _tcp(port, 53, isn + 1, sisn + 1, 0x18, uq, True)))
        ua = uq[:2] + uq[2:4] + b"\x81\x80" + answer[4:]
        ua = struct.pack(">H", len(ua) - 2) + ua[2:]
        ts += 40 + rnd.randint(500, 3000)
        recs.append((ts, _tcp(53, port, sisn + 1, isn + 1 + len(uq), 0x18, ua, False)))
        c, s = isn + 1 + len(uq), sisn + 1 + len(ua)
        recs.append((ts + 30, _tcp(port, 53, c, s, 0x11, b"", True)))
        recs.append((ts + 60, _tcp(53, port, s, c + 1, 0x11, b"", False)))
        recs.append((ts + 90, _tcp(port, 53, c + 1, s + 1, 0x10, b"", True)))
        recs.append((ts + 40, _udp(CACHE, 53, pod, sport, answer)))
    # no truncation: every started transaction is complete, so the counts above are exact
    recs.sort(key=lambda r: r[0])
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts_us, pkt in recs:
            fh.write(
                struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(pkt), len(pkt))
            )
            fh.write(pkt)
    stats["packets"] = len(recs)
    return stats


# -------------------------------------------------------------------------------------------
# cases, each run in a child process


def _case(name: str, path: str, extra: str) -> dict[str, float]:
    import pyshark

    from kit.sources.capture import read_capture  # imports are not timed (same for every case)

    t0 = time.perf_counter()
    rows = 0
    if name == "tshark":
        from kit.sources import _tshark
        from kit.sources.capture._engine_tshark import _AGG, _BASE_FILTER, _FIELDS

        argv = [_tshark.find_tshark(), "-n", "-r", path, "-Y", _BASE_FILTER, "-T", "fields"]
        argv += ["-E", "separator=/t", "-E", "occurrence=a", "-E", f"aggregator={_AGG}"]
        for f, _ in _FIELDS:
            argv += ["-e", f]
        with open(os.devnull, "wb") as dn:
            subprocess.run(
                argv, stdout=dn, stderr=subprocess.DEVNULL, env=_tshark.run_env(), check=True
            )
    elif name in ("cold", "cache"):
        cap = read_capture(path, cache=extra, progress=False, engine="tshark")
        rows = cap.dns.height
    elif name == "onepass":
        cap = read_capture(path, cache=False, progress=False, chunk_packets=0, engine="tshark")
        rows = cap.dns.height
    elif name == "native":  # parallel within the file: one thread per CPU
        cap = read_capture(
            path, cache=False, progress=False, engine="native", workers=os.cpu_count() or 1
        )
        rows = cap.dns.height
    elif name == "folder":
        cap = read_capture(path, cache=False, progress=False, engine="native")
        rows = cap.dns.height
    elif name == "native1":
        cap = read_capture(path, cache=False, progress=False, engine="native", workers=1)
        rows = cap.dns.height
    elif name == "pyshark":
        cap = pyshark.FileCapture(path, keep_packets=False)
        for pkt in cap:
            if "DNS" in pkt:
                _ = pkt.dns.id
            rows += 1
        cap.close()
    secs = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": secs, "rows": rows, "rss_self_mib": me, "rss_child_mib": kids}


def run_case(name: str, path: Path, extra: str = "") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--case", name, str(path), extra],
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--subset", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--source", type=Path, help="measure this capture instead of generating one")
    ap.add_argument("--folder", type=int, default=0, help="also read N copies in one call")
    ap.add_argument("--skip-tshark-engine", action="store_true", help="no cold/onepass/cache")
    ap.add_argument(
        "--bare-subset",
        type=int,
        default=0,
        help="run bare tshark on the first N packets only (sampled; 10 M packets under load)",
    )
    ap.add_argument(
        "--engine-subset",
        type=int,
        default=0,
        help="run the tshark-engine cases on the first N packets only (sampled)",
    )
    ap.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.case:
        print(json.dumps(_case(*a.case)))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    if a.source:
        big = a.source.resolve()
        small = OUT / f"{big.stem}_first{a.subset}.pcap"
        out = subprocess.run(["capinfos", "-M", "-T", "-r", "-c", str(big)], capture_output=True)
        st = {"packets": int(out.stdout.decode().split("\t")[-1])}
    else:
        big = OUT / f"capture_{a.packets}.pcap"
        small = OUT / f"capture_{a.packets}_first{a.subset}.pcap"
        info = big.with_suffix(".json")
        if not big.exists() or not info.exists():
            t0 = time.perf_counter()
            st = generate(big, a.packets)
            info.write_text(json.dumps(st))
            print(f"generated {big.name} in {time.perf_counter() - t0:.1f} s")
        st = json.loads(info.read_text())
    print(f"content: {st}")
    if not small.exists():
        subprocess.run(["editcap", "-r", str(big), str(small), f"1-{a.subset}"], check=True)
    engine_file, engine_n = big, st["packets"]
    if a.engine_subset and a.engine_subset < st["packets"]:
        engine_file = OUT / f"{big.stem}_first{a.engine_subset}.pcap"
        engine_n = a.engine_subset
        if not engine_file.exists():
            subprocess.run(
                ["editcap", "-r", str(big), str(engine_file), f"1-{engine_n}"], check=True
            )
    results: dict[str, dict[str, float]] = {}

    def best(name: str, path: Path, extra: str = "", reps: int = a.reps) -> None:
        runs = [run_case(name, path, extra) for _ in range(reps)]
        results[name] = min(runs, key=lambda r: r["seconds"])
        r = results[name]
        reps_s = ", ".join(f"{x['seconds']:.2f}" for x in runs)
        print(f"  {name:8s} {r['seconds']:8.2f} s  (reps: {reps_s})", flush=True)

    print(f"measuring on {big.name} ({big.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} CPUs")
    if a.bare_subset and a.bare_subset < st["packets"]:
        bare = OUT / f"{big.stem}_first{a.bare_subset}.pcap"
        if not bare.exists():
            subprocess.run(["editcap", "-r", str(big), str(bare), f"1-{a.bare_subset}"], check=True)
        best("tshark", bare)
        results["tshark"]["packets"] = a.bare_subset
    else:
        best("tshark", big)
    best("native", big, reps=max(3, a.reps))
    best("native1", big, reps=max(3, a.reps))
    if a.folder:
        fdir = Path(tempfile.mkdtemp(prefix="dnskit-bench-folder-", dir=big.parent))
        try:
            for i in range(a.folder):
                os.link(big, fdir / f"node{i:02d}.pcap")  # hard links: read_capture dedups symlinks
            best("folder", fdir, reps=1)
        finally:
            shutil.rmtree(fdir, ignore_errors=True)
    cdir = Path(tempfile.mkdtemp(prefix="dnskit-bench-cache-"))
    if a.skip_tshark_engine:
        best("pyshark", small, reps=1)
        _table(results, st["packets"], a.subset, a.folder)
        return 0
    big = engine_file  # the tshark-engine cases: the whole file, or its first --engine-subset
    try:
        # cold: a fresh cache folder per repetition
        runs = []
        for _ in range(a.reps):
            shutil.rmtree(cdir, ignore_errors=True)
            runs.append(run_case("cold", big, str(cdir)))
        results["cold"] = min(runs, key=lambda r: r["seconds"])
        print(f"  cold     {results['cold']['seconds']:8.2f} s", flush=True)
        best("onepass", big)
        best("cache", big, str(cdir), reps=max(3, a.reps))
        for k in ("cold", "onepass", "cache"):
            results[k]["packets"] = engine_n
        sub_cache = Path(tempfile.mkdtemp(prefix="dnskit-bench-sub-"))
        results["subset"] = run_case("cold", small, str(sub_cache))
        shutil.rmtree(sub_cache, ignore_errors=True)
    finally:
        shutil.rmtree(cdir, ignore_errors=True)
    best("pyshark", small, reps=1)
    _table(results, st["packets"], a.subset, a.folder)
    print(f"dns rows: {results['cold']['rows']:,}")
    return 0


def _table(results: dict[str, dict[str, float]], n: int, m: int, folder: int) -> None:
    size = {"folder": n * folder, "subset": m, "pyshark": m}
    size.update({k: int(v["packets"]) for k, v in results.items() if "packets" in v})
    rate = {k: size.get(k, n) / v["seconds"] for k, v in results.items()}
    rate.setdefault("tshark", 1.0)
    rate.setdefault("pyshark", 1.0)
    for k in ("native", "native1", "folder", "cold", "onepass", "subset"):
        rate.setdefault(k, 0.0)
    cache_s = results.get("cache", {"seconds": 0.0})["seconds"]
    en = size.get("cold", n)
    sampled = f" (first {en:,} packets)" if en != n else ""
    print()
    print(
        "| case | packets | seconds | packets/s | ratio | peak RSS python MiB | peak RSS tshark MiB |"
    )
    print("|---|---:|---:|---:|---|---:|---:|")
    rows = [
        (
            "tshark",
            "bare `tshark -T fields` (same filter/fields)"
            + (f" (first {size['tshark']:,} packets)" if size.get("tshark", n) != n else ""),
            size.get("tshark", n),
            "1.00x (baseline)",
        ),
        (
            "native",
            "read_capture native engine, no cache",
            n,
            f"{rate['native'] / rate['tshark']:.1f}x tshark",
        ),
        (
            "native1",
            "read_capture native engine, one pass (workers=1), no cache",
            n,
            f"{rate['native1'] / rate['tshark']:.1f}x tshark; parallel "
            f"{rate['native'] / rate['native1']:.2f}x one pass",
        ),
        (
            "folder",
            f"read_capture native, folder of {folder} captures",
            n * folder,
            f"{rate['folder'] / rate['tshark']:.1f}x tshark",
        ),
        (
            "cold",
            "read_capture tshark engine cold, defaults (+cache write)" + sampled,
            en,
            f"{rate['cold'] / rate['tshark']:.2f}x tshark",
        ),
        (
            "onepass",
            "read_capture tshark engine, one pass (chunk_packets=0, no cache)" + sampled,
            en,
            f"{rate['onepass'] / rate['tshark']:.2f}x tshark",
        ),
        (
            "cache",
            "read_capture from cache" + sampled,
            en,
            f"{cache_s / (en / 1e6):.2f} s per M packets",
        ),
        (
            "subset",
            f"read_capture tshark engine cold, first {m // 1000}k",
            m,
            f"{rate['subset'] / rate['pyshark']:.1f}x pyshark",
        ),
        ("pyshark", f"pyshark FileCapture, first {m // 1000}k", m, "1.00x (baseline)"),
    ]
    for key, label, cnt, ratio in rows:
        if key not in results:
            continue
        r = results[key]
        print(
            f"| {label} | {cnt:,} | {r['seconds']:.2f} | {rate[key]:,.0f} | {ratio} | "
            f"{r['rss_self_mib']:.0f} | {r['rss_child_mib']:.0f} |"
        )
    print()
    print(
        f"native vs pyshark (whole-file native rate / subset pyshark rate): "
        f"{rate['native'] / rate['pyshark']:.0f}x"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
