"""A pod's application resolving names through the real glibc stub resolver (``getaddrinfo``).

``python -m lab.stubclient --lps 5 --seconds 30 NAME...`` looks up one of the names (chosen at
random) ``lps`` times per second for ``seconds`` seconds, from 4 threads (``--threads``), with
``getaddrinfo(name, None, AF_UNSPEC, SOCK_STREAM)``: glibc reads /etc/resolv.conf (search list,
``ndots``; re-read when it changes) and sends the A and AAAA queries of each try together from
one socket. One line per lookup on stdout, tab-separated, with a header:
``ts`` (UTC ISO-8601 start), ``name``, ``duration_s``, ``result`` (``ok`` or the EAI error name),
``addresses`` (comma-separated).

``--names-file FILE`` instead of ``NAME...``: the names (one per line) are looked up in order,
each once (a never-asked name is a cache miss each time); the client stops early when they run
out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import socket
import sys
import threading
import time

_EAI = {
    getattr(socket, n): n
    for n in dir(socket)
    if n.startswith("EAI_") and isinstance(getattr(socket, n), int)
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.stubclient")
    ap.add_argument("--lps", type=float, required=True, help="lookups per second (all threads)")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--names-file", help="look these names up in order, each once (one per line)")
    ap.add_argument("names", nargs="*", help="names chosen from at random for each lookup")
    args = ap.parse_args(argv)
    if bool(args.names) == bool(args.names_file):
        ap.error("give NAME... or --names-file, not both or neither")
    if args.lps <= 0 or args.threads < 1:
        ap.error("--lps must be > 0 and --threads >= 1")
    queue: list[str] = []
    if args.names_file:
        with open(args.names_file, encoding="ascii") as fh:
            queue = [ln.strip() for ln in fh if ln.strip()]
        queue.reverse()  # pop() from the end: the file's order
    lock = threading.Lock()
    out = sys.stdout
    out.write("ts\tname\tduration_s\tresult\taddresses\n")
    out.flush()
    end = time.monotonic() + args.seconds
    period = args.threads / args.lps

    def worker(k: int) -> None:
        rng = random.Random(args.seed * 100 + k)
        nxt = time.monotonic() + k * period / args.threads
        while True:
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            if time.monotonic() >= end:
                return
            nxt += period
            if args.names_file:
                with lock:
                    if not queue:
                        return
                    name = queue.pop()
            else:
                name = rng.choice(args.names)
            wall = time.time()
            t = time.perf_counter()
            try:
                res = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
                result = "ok"
                addrs = ",".join(sorted({str(r[4][0]) for r in res}))
            except socket.gaierror as exc:
                result = _EAI.get(exc.errno, str(exc.errno))
                addrs = ""
            took = time.perf_counter() - t
            ts = dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="microseconds")
            with lock:
                out.write(f"{ts}\t{name}\t{took:.6f}\t{result}\t{addrs}\n")
                out.flush()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(args.threads)]
    for th in threads:
        th.start()
    try:
        for th in threads:
            th.join()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
