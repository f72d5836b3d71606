"""Timing helper shared by the bench scripts (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], reps: int = 3) -> float:
    """Median wall time of ``reps`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def default_capture(packets: int = 200_000, seed: int = 11) -> str:
    """A node capture for the benches that take one when none is given (``make bench``):
    ``../shared/tools/gen_pcap.py -n PACKETS --seed SEED`` made once into ``bench/out/`` (pods ->
    cache -> upstream over TCP with SYN retransmissions), else the sample's node1 capture."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    gen = repo.parent / "shared" / "tools" / "gen_pcap.py"
    if not gen.is_file():
        return str(repo / "data" / "sample" / "captures" / "node1.pcap")
    out = repo / "bench" / "out" / f"gen-{packets}-{seed}" / "node.pcap"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        subprocess.run(
            [sys.executable, str(gen), "-n", str(packets), "-o", str(tmp), "--seed", str(seed)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tmp.rename(out)
    return str(out)
