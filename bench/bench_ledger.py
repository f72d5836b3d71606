"""Speed and peak memory of kit.ledger on a capture, against read_capture and attribute_slow_answers.

Run: ``.venv/bin/python bench/bench_ledger.py [CAPTURE] [--limit-gb 12] [--cases a,b]``

e.g. on ``python ../shared/tools/gen_pcap.py -n 2000000 -o node2m/node.pcap --seed 11`` (paths
relative to the clone); without CAPTURE, a 200 k-packet capture made the same way in bench/out/.
Each case runs in a fresh interpreter (``bench_memory``'s method and helper: resident size after
importing the kit is ``base``; the capture is loaded from the kit's cache, so the first run of a
capture fills the cache and is not measured: run ``load`` once before). Cases:

- ``load``: ``kit.read_capture`` from the cache (seconds; ``peak`` - ``base`` = the frames);
- ``server_roles``: who is the cache and who the upstream (the ledger's first step; attribution
  does not need it);
- ``attribute_slow_answers``: the existing analysis that finds the upstream leg of each slow
  answer (slow_s 1.0), the baseline the ledger generalises;
- ``ledger``: ``kit.ledger(cap)``, every client query;
- ``ledger_slow``: ``kit.ledger(cap, slow_s=1.0)``, what the notebooks call.

Printed per case (median of ``--reps`` runs of it, the cases one after the other):
seconds, frames MiB, peak MiB, extra MiB (peak - frames: what the analysis needs
on top of the loaded capture) and the ratios of the ledger cases to ``load`` and to
``attribute_slow_answers`` (time and extra memory), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import default_capture
from bench_memory import _status  # the same VmRSS / VmHWM reader

REPO = Path(__file__).resolve().parent.parent
CASES = ("load", "server_roles", "attribute_slow_answers", "ledger", "ledger_slow")


def _fn(case: str) -> Callable[[Any], object]:
    import kit
    from kit.analyses.attribution import attribute_slow_answers
    from kit.analyses.roles import server_roles

    return {
        "load": lambda cap: None,
        "server_roles": lambda cap: server_roles(cap.dns, tcp=cap.tcp),
        "attribute_slow_answers": lambda cap: attribute_slow_answers(cap, slow_s=1.0),
        "ledger": lambda cap: kit.ledger(cap),
        "ledger_slow": lambda cap: kit.ledger(cap, slow_s=1.0),
    }[case]


def _child(path: str, case: str) -> None:
    import kit

    fn = _fn(case)
    base = _status("VmRSS")
    t = time.perf_counter()
    cap = kit.read_capture(path, progress=False)
    load_s = time.perf_counter() - t
    frames = _status("VmRSS") - base
    Path("/proc/self/clear_refs").write_text("5")
    t = time.perf_counter()
    out = fn(cap)
    wall = time.perf_counter() - t if case != "load" else load_s
    peak = _status("VmHWM") - base
    rows = getattr(getattr(out, "queries", out), "height", None) if out is not None else None
    hops = getattr(getattr(out, "hops", None), "height", None)
    print(json.dumps({"frames_mib": frames, "peak_mib": peak, "s": wall, "rows": rows,
                      "hops": hops, "dns_rows": cap.dns.height}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "capture", nargs="?", help="a capture (default: a 200 k-packet gen_pcap capture, made once)"
    )
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--limit-gb", type=float, default=12.0)
    ap.add_argument("--reps", type=int, default=3, help="runs per case (median reported)")
    ap.add_argument("--child", default="")
    a = ap.parse_args()
    if a.child:
        _child(a.capture, a.child)
        return
    if not a.capture:
        a.capture = default_capture()
    cap = [] if a.limit_gb <= 0 else ["prlimit", f"--as={int(a.limit_gb * 2**30)}"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    got: dict[str, dict[str, float]] = {}
    print(
        f"{'case':<24} {'s':>7} {'frames MiB':>10} {'peak MiB':>9} {'extra MiB':>9} {'rows':>9} {'hops':>9}"
    )
    for name in a.cases.split(","):
        runs = []
        for _ in range(a.reps):
            r = subprocess.run(
                [*cap, sys.executable, __file__, a.capture, "--child", name],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            if r.returncode:
                break
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        if r.returncode:
            tail = (r.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name:<24} FAILED ({r.returncode}): {tail}", flush=True)
            continue
        d = dict(runs[0])
        for k in ("s", "frames_mib", "peak_mib"):
            d[k] = statistics.median(x[k] for x in runs)
        d["extra_mib"] = d["peak_mib"] - d["frames_mib"]
        got[name] = d
        print(
            f"{name:<24} {d['s']:>7.2f} {d['frames_mib']:>10.0f} {d['peak_mib']:>9.0f}"
            f" {d['extra_mib']:>9.0f} {d['rows'] or '':>9} {d['hops'] or '':>9}",
            flush=True,
        )
    for name in ("ledger", "ledger_slow"):
        if name not in got:
            continue
        d = got[name]
        parts = [f"{name}: extra/frames {d['extra_mib'] / d['frames_mib']:.2f}"]
        if "load" in got:
            parts.append(f"s/load {d['s'] / got['load']['s']:.2f}")
        if "attribute_slow_answers" in got:
            b = got["attribute_slow_answers"]
            parts.append(f"s/attribute {d['s'] / b['s']:.2f}")
            parts.append(f"extra/attribute extra {d['extra_mib'] / max(b['extra_mib'], 1):.2f}")
        print("  ".join(parts))


if __name__ == "__main__":
    main()
