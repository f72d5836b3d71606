"""Peak memory of the capture analyses, one fresh interpreter per case (RSS, not tracemalloc).

Run: ``.venv/bin/python bench/bench_memory.py CAPTURE [CAPTURE ...] [--cases a,b] [--limit-gb 8]
[--baseline DIR]``

polars allocates outside Python's allocator, so tracemalloc does not see it; each case runs in a
child process that imports the kit (resident size ``base``), loads the capture (from the kit's
cache: run it once before to fill it), reads its resident size (``frames`` = RSS - base), resets the kernel's high-water mark (``/proc/self/clear_refs``
``5``), runs the case, and reads ``VmHWM`` again (``peak`` = VmHWM - base). ``extra`` = peak - frames is what the analysis
itself needed on top of the loaded frames; the ratio ``extra / frames`` is what must not grow with
capture size (bounded memory, issue 16). Each child runs under ``prlimit --as`` (``--limit-gb``)
so that a runaway case fails instead of taking the machine (``--limit-gb 0``: no cap; watch
``free -g`` then). ``--baseline DIR`` runs every case a second time with the kit of another
checkout (e.g. ``git worktree add ../kit-before HEAD~1``), one line after the other, so the two are measured
under the same load.

Cases: the calls notebooks 05/06 and the findings make on a capture (``load`` is read_capture
alone; ``run_on`` is every check of :func:`kit.findings.run_on`; ``check_<name>`` is one findings
check on the capture alone: ``conntrack_race``, ``ndots_expansion``, ``truncation``,
``syn_retransmissions``, ``upstream_unreachable``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import default_capture  # bench/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parent.parent


def _status(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _cases(path: str) -> dict[str, Callable[[Any], object]]:
    import polars as pl

    import kit
    import kit.analyses.attribution as att
    import kit.analyses.rates as rates
    import kit.analyses.upstream as up
    import kit.findings
    import kit.findings.checks_logs as cl
    import kit.findings.checks_transport as ct

    def ups(cap: Any) -> list[str]:
        return up.infer_upstream_ips(cap.dns, None, tcp=cap.tcp)

    def client(cap: Any) -> Any:
        u = ups(cap)
        return up.client_queries(cap.dns, up.infer_cache_ips(cap.dns, None, upstream_ips=u))

    def run_on(cap: Any) -> object:
        import dataclasses

        inputs = dataclasses.replace(kit.findings.load_inputs(), capture=cap)  # no second load
        return kit.findings.run_on(inputs, upstreams=kit.findings.infer_upstreams(cap))

    def symptoms(cap: Any) -> object:
        return kit.findings.symptom_series(capture=cap, upstreams=ups(cap), every="5s")

    return {
        "load": lambda cap: None,
        "infer_upstream_ips": ups,
        "server_roles": lambda cap: up.server_roles(cap.dns, tcp=cap.tcp),
        "connection_summary": lambda cap: up.connection_summary(
            cap.tcp, by=["capture", "server_ip"], server_ips=ups(cap)
        ),
        "syn_retransmissions": lambda cap: up.syn_retransmissions(
            cap.packets, every="1s", by=["capture", "dst_ip"], server_ips=ups(cap)
        ),
        "handshake_histogram": lambda cap: up.log_histogram(
            cap.tcp.filter(pl.col("server_ip").is_in(ups(cap))),
            value="handshake_s",
            by=["capture", "server_ip"],
        ),
        "client_modes": lambda cap: (
            up.latency_modes_by(client(cap), value="latency_s", by=["capture"]),
            up.log_histogram(client(cap), value="latency_s", by=["capture"]),
        ),
        "attribute_slow_answers": lambda cap: up.attribution_summary(
            att.attribute_slow_answers(cap)
        ),
        "packet_rates": lambda cap: rates.rate_summary(
            rates.packet_rates(
                up.upstream_packets(cap.packets, ups(cap)), every="1s", by=["capture", "dst_ip"]
            ),
            by=["capture", "dst_ip"],
        ),
        "symptom_series": symptoms,
        "run_on": run_on,
        "check_conntrack_race": lambda cap: ct.conntrack_race_result(cap),
        "check_ndots_expansion": lambda cap: cl.ndots_expansion_result(capture=cap),
        "check_truncation": lambda cap: ct.truncation_result(cap),
        "check_syn_retransmissions": lambda cap: ct.syn_retransmissions_result(
            cap, upstreams=ups(cap)
        ),
        "check_upstream_unreachable": lambda cap: ct.upstream_unreachable_result(
            cap, upstreams=ups(cap)
        ),
    }


def _child(path: str, case: str) -> None:
    import kit

    fn = _cases(path)[case]  # imports every module the cases use
    base = _status("VmRSS")
    cap = kit.read_capture(path, progress=False)
    frames = _status("VmRSS") - base
    Path("/proc/self/clear_refs").write_text("5")
    t = time.perf_counter()
    fn(cap)
    wall = time.perf_counter() - t
    peak = _status("VmHWM") - base
    print(json.dumps({"frames_mib": frames, "peak_mib": peak, "s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "captures", nargs="*", help="captures (default: a 200 k-packet gen_pcap capture, made once)"
    )
    ap.add_argument("--cases", default="")
    ap.add_argument("--limit-gb", type=float, default=8.0)
    ap.add_argument("--baseline", default="", help="another checkout whose kit runs each case too")
    ap.add_argument("--child", default="")
    a = ap.parse_args()
    if a.child:
        _child(a.captures[0], a.child)
        return
    if not a.captures:
        a.captures = [default_capture()]
    names = a.cases.split(",") if a.cases else _names()
    codes = [("", REPO)] + ([(" (baseline)", Path(a.baseline).resolve())] if a.baseline else [])
    print(
        f"{'capture':<24} {'case':<36} {'frames MiB':>10} {'peak MiB':>9} {'extra MiB':>9} {'extra/frames':>12} {'s':>7}"
    )
    cap = [] if a.limit_gb <= 0 else ["prlimit", f"--as={int(a.limit_gb * 2**30)}"]
    for path in a.captures:
        for name in names:
            for tag, code in codes:
                env = dict(os.environ, PYTHONPATH=str(code))
                label = name + tag
                cmd = [*cap, sys.executable, __file__, path, "--child", name]
                r = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if r.returncode:
                    tail = (r.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{Path(path).name:<24} {label:<36} FAILED ({r.returncode}): {tail}")
                    continue
                d = json.loads(r.stdout.strip().splitlines()[-1])
                extra = d["peak_mib"] - d["frames_mib"]
                print(
                    f"{Path(path).name:<24} {label:<36} {d['frames_mib']:>10.0f}"
                    f" {d['peak_mib']:>9.0f} {extra:>9.0f}"
                    f" {extra / d['frames_mib']:>12.2f} {d['s']:>7.2f}",
                    flush=True,
                )


def _names() -> list[str]:
    return [
        "load", "infer_upstream_ips", "server_roles", "connection_summary", "syn_retransmissions",
        "handshake_histogram", "client_modes", "attribute_slow_answers", "packet_rates",
        "symptom_series", "run_on", "check_conntrack_race", "check_ndots_expansion",
        "check_truncation", "check_syn_retransmissions", "check_upstream_unreachable",
    ]  # fmt: skip


if __name__ == "__main__":
    main()
