"""Memory held by read_coredns_log: a few leftover lines must not keep whole blocks' text alive.

The fast path splits each block's default-format queries; the few other lines (errors, banners)
wait for a batch of the general path. Those leftovers used to be ``filter``-ed views into their
block's text, so with 0.1 % other lines every block's text stayed in memory until the end of the
file (~1.7x the frames at peak on a 4 M-line log). Measured in a subprocess with jemalloc's decay
set to 0 (polars' allocator), so that the peak RSS follows live memory rather than the
allocator's caches.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

QUERY = (
    '[INFO] 10.244.{a}.{b}:{port} - {qid} "A IN svc{n}.ns{m}.svc.cluster.local. udp 60 false 1232" '
    "NOERROR qr,aa,rd 160 0.000{d}s"
)
OTHER = "[ERROR] plugin/errors: 2 example.com. A: read udp 10.0.0.5:53039->10.0.0.2:53: i/o timeout"

MEASURE = """
import json, sys
sys.path.insert(0, sys.argv[2])
import polars as pl
import kit.sources.coredns

if sys.argv[3] == "polars":
    kit.sources.coredns._native._fastlog = None  # the polars-only path

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

base = status("VmRSS")
res = kit.sources.coredns.read_coredns_log(sys.argv[1], chunk_bytes=1 << 20)
peak = status("VmHWM") - base
print(json.dumps({"peak": peak, "queries": res.queries.height, "errors": res.errors.height}))
"""


def _write(path: Path, n: int, *, others_at_end: bool) -> int:
    """``n`` lines, one in 1000 an error line: spread over the file, or all at its end."""
    rnd = random.Random(7)
    queries = []
    others = []
    for i in range(n):
        if i % 1000 == 999:
            others.append((i, OTHER))
        else:
            queries.append(
                (
                    i,
                    QUERY.format(
                        a=rnd.randrange(256),
                        b=rnd.randrange(256),
                        port=rnd.randrange(1024, 65536),
                        qid=rnd.randrange(65536),
                        n=rnd.randrange(500),
                        m=rnd.randrange(7),
                        d=rnd.randrange(100, 999),
                    ),
                )
            )
    rows = queries + others if others_at_end else sorted(queries + others)
    path.write_text("\n".join(line for _, line in rows) + "\n")
    return len(others)


def _peak(path: Path, engine: str) -> dict[str, int]:
    return _measure(MEASURE, path, engine)


def _measure(script: str, path: Path, *args: str) -> dict[str, int]:
    """Run ``script`` on ``path`` in a subprocess whose allocator frees pages at once (jemalloc
    decay 0: RSS follows live memory); its last line of output, as JSON."""
    env = dict(os.environ, _RJEM_MALLOC_CONF="dirty_decay_ms:0,muzzy_decay_ms:0")
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("engine", ["native", "polars"])
@pytest.mark.slow
def test_leftover_lines_do_not_hold_their_blocks(tmp_path: Path, engine: str) -> None:
    import kit.sources.coredns

    if engine == "native" and not kit.sources.coredns.NATIVE:
        pytest.skip("the native tokenizer was not built")
    n = 300_000
    at_end = tmp_path / "at_end.log"
    spread = tmp_path / "spread.log"
    others = _write(at_end, n, others_at_end=True)
    _write(spread, n, others_at_end=False)
    # the same lines, so the same frames and the same general-path work; only where the error
    # lines sit differs: spread over the file, one in every 1 MiB block
    end = _peak(at_end, engine)
    mid = _peak(spread, engine)
    for m in (end, mid):
        assert m["errors"] == others and m["queries"] == n - others
    size = spread.stat().st_size
    # had the leftovers kept their blocks, the file's text (~36 MB) would be held at the peak
    assert mid["peak"] < end["peak"] + 0.15 * size, (end, mid, size)


LONG_LINE_BYTES = 10_000_000


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("engine", ["native", "polars"])
@pytest.mark.slow
def test_a_10_mb_line_costs_a_small_multiple_of_its_size(
    tmp_path: Path, shared_fixtures: Path, engine: str
) -> None:
    """A 10 MB line (invalid UTF-8, the worst case: it was 45x its size with jemalloc decay 0 and
    65x with the default allocator) is cut from its block before parsing: the load's peak grows by
    at most 3x the line over the same file without it (measured: ~1x)."""
    import kit.sources.coredns

    if engine == "native" and not kit.sources.coredns.NATIVE:
        pytest.skip("the native tokenizer was not built")
    real = (shared_fixtures / "logs" / "github_issue_excerpts_querylog.log").read_bytes() * 5
    cut = real.find(b"\n", 9000) + 30  # inside a query line, past the binary check's 8 KiB
    with_line = tmp_path / "with.log"
    without = tmp_path / "without.log"
    with_line.write_bytes(real[:cut] + b"\xff" * LONG_LINE_BYTES + real[cut:])
    without.write_bytes(real)
    big = _peak(with_line, engine)
    small = _peak(without, engine)
    assert big["queries"] == small["queries"] - 1  # the line that took the 10 MB is rejected
    assert big["peak"] - small["peak"] < 3 * LONG_LINE_BYTES, (big, small)


MEASURE_HELD = """
import gc, json, sys, warnings
sys.path.insert(0, sys.argv[2])
import kit.sources.coredns

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

warnings.simplefilter("ignore")
if len(sys.argv) > 3:  # a smaller file shows what a larger one does with the default span
    kit.sources.coredns.reader._GENERAL_BATCH_SPAN = int(sys.argv[3])
base = status("VmRSS")
res = kit.sources.coredns.read_coredns_log(sys.argv[1], chunk_bytes=4 << 20)
peak = status("VmHWM") - base
gc.collect()
print(json.dumps({"peak": peak, "held": status("VmRSS") - base, "lines": res.lines_read}))
"""


def _real_lines(shared_fixtures: Path) -> list[bytes]:
    lines: list[bytes] = []
    for p in sorted((shared_fixtures / "logs").glob("*.log")):
        lines += p.read_bytes().rstrip(b"\n").split(b"\n")
    return lines


def _peak_and_held(path: Path, *extra: str) -> dict[str, int]:
    return _measure(MEASURE_HELD, path, *extra)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_real_line_mix_peaks_near_its_frames(tmp_path: Path, shared_fixtures: Path) -> None:
    """Every real CoreDNS line of ../shared (queries of every era, JSON and CRI wrappers, errors,
    banners), repeated to 1 M lines: fast-path and general-path rows interleave in every block.
    They used to be put in line order by one sort of each whole frame, a copy of the largest frame
    at the end (peak 1.28x the frames here, 1.31x on 5 M lines); only overlapping runs are merged
    now (1.05x). Frames measured as RSS after the load with jemalloc decay 0 (what they hold)."""
    lines = _real_lines(shared_fixtures)
    block = b"\n".join(lines) + b"\n"
    reps = -(-1_000_000 // len(lines))
    path = tmp_path / "real_mix.log"
    with path.open("wb") as out:
        for _ in range(reps):
            out.write(block)
    m = _peak_and_held(path)
    assert m["lines"] == reps * len(lines)
    assert m["peak"] < 1.15 * m["held"], m


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_rare_leftover_queries_do_not_copy_the_file_s_queries(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    """The real default-format query lines with 1 % of the other real lines (older formats, JSON,
    errors...): leftovers were batched until 50,000 rows, one batch per 5 M lines, and putting
    that batch's queries in line order with the fast path's copied them all (1.56x the frames on
    5 M lines; 1.07x now). Here 1 M lines with the batch span set to 100,000 lines, as 5 M lines
    with the default 500,000."""
    import random
    import re

    lines = _real_lines(shared_fixtures)
    fast = [x for x in lines if re.match(rb'^\[INFO\] \S+:\d+ - \d+ "', x)]
    other = [x for x in lines if x not in fast]
    assert len(fast) >= 10 and len(other) >= 50
    rnd = random.Random(1)
    path = tmp_path / "mostly_fast.log"
    with path.open("wb") as out:
        for _ in range(10):
            rows = [rnd.choice(other if rnd.random() < 0.01 else fast) for _ in range(100_000)]
            out.write(b"\n".join(rows) + b"\n")
    m = _peak_and_held(path, "100000")
    assert m["lines"] == 1_000_000
    assert m["peak"] < 1.2 * m["held"], m
