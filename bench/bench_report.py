"""Benchmark the report pipeline: where the time of ``dnskit report`` goes, against its baselines.

Run: ``.venv/bin/python bench/bench_report.py [--reps N] [--artefacts data/sample]``

Every case runs in this one invocation, ``--reps`` times (median wall time shown), so the ratios
compare figures measured under the same machine load. Baselines:

- ``kernel``: papermill executing a one-cell notebook (``1 + 1``): kernel start-up and shutdown,
  the floor of any notebook the report runs;
- ``target``: the issue's budget for the whole sample investigation, 60 s.

Cases:

- ``kernel+imports``: the same with ``import polars, altair, kit`` in the cell;
- ``first SVG``: a fresh interpreter rendering one Altair chart to SVG through vl-convert;
- ``export``: nbconvert rendering an executed notebook with the kit's template (in process);
- ``4 x 00-start-here``: the same notebook four times in one report, in one shared kernel (the
  default) and with ``--isolated`` (a kernel each): the per-notebook overhead;
- ``report``: ``dnskit report ARTEFACTS -j N -o ...`` as a user runs it (all notebooks + HTML),
  serial (``-j 1``) and two notebooks at a time (``-j 2``).

With ``--capture-dir DIR`` (a folder holding a real-size capture, e.g. the 2 M-packet node capture
of ``python ../shared/tools/gen_pcap.py -n 2000000 -o DIR/node.pcap --seed 11``) it measures
instead, in one run (issue 16): one bare ``tshark -n -r FILE -Y <the kit's filter> -T fields``
pass with 18 DNS+TCP fields (:data:`BARE_FIELDS`, output to /dev/null) against the whole
``dnskit report DIR`` with an empty capture cache (cold: the capture is read too) and again with
the cache filled (warm). For each: wall seconds, the largest single process's peak RSS
(``wait4``), and the peak of the summed RSS of the whole process tree (report + kernels + tools,
sampled every 0.1 s from /proc), with the ratios to tshark. ``--skip-tshark``: the report alone
(for 10 M packets or a folder of 20 captures, where the tshark pass takes many minutes).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_S = 60.0


LOADS: dict[int, float] = {}
CPU: dict[int, list[float]] = {}


def _cpu() -> float:
    """User+system CPU seconds of this process and of its waited-for children (kernels, tools)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object], reps: int) -> list[float]:
    """Wall times of ``reps`` calls; the 1-minute load average at the start is kept in LOADS and
    the CPU seconds of each call in CPU (less sensitive than wall time to other jobs)."""
    case = len(LOADS)
    LOADS[case] = os.getloadavg()[0]
    CPU[case] = []
    out = []
    for _ in range(reps):
        c = _cpu()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
        CPU[case].append(_cpu() - c)
    return out


def _papermill_cell(source: str) -> Callable[[], object]:
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells.append(nbformat.v4.new_code_cell(source))

    def run() -> object:
        return papermill.execute_notebook(
            nb,
            None,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(REPO),
            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # as kit.report runs kernels
        )

    return run


#: The bare tshark baseline's fields: the DNS and TCP fields an analysis of a capture needs.
BARE_FIELDS = (
    "frame.number", "frame.time_epoch", "frame.len", "ip.src", "ip.dst", "udp.srcport",
    "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.stream", "tcp.flags",
    "tcp.analysis.retransmission", "tcp.seq_raw", "dns.id", "dns.flags", "dns.count.answers",
    "dns.qry.name", "dns.qry.type",
)  # fmt: skip


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of ``pid`` and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def _measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run ``argv`` (stdout/stderr discarded): wall s, peak RSS of its largest process (MiB, from
    wait4) and peak summed RSS of its process tree (MiB, sampled every 0.1 s)."""
    import threading

    t = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(f"warning: {argv[:4]}... exited with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, peak[0] / 2**20


def _large(capture_dir: str, *, tshark_pass: bool = True) -> int:
    """Whole report on a real-size capture against one bare tshark pass (see the module doc);
    ``tshark_pass=False``: the report alone (cold and warm), no ratios."""
    from kit.sources import _tshark
    from kit.sources.capture._engine_tshark import _BASE_FILTER

    files = sorted(p for p in Path(capture_dir).iterdir() if p.is_file())
    tshark = _tshark.find_tshark()
    rows = []
    base: tuple[float, float, float] | None = None
    for f in files if tshark_pass else []:
        argv = [tshark, "-n", "-r", str(f), "-Y", _BASE_FILTER, "-T", "fields"]
        argv += [x for field in BARE_FIELDS for x in ("-e", field)]
        m = _measured(argv, env=_tshark.run_env())
        base = m if base is None else (base[0] + m[0], max(base[1], m[1]), max(base[2], m[2]))
    assert files, f"no file in {capture_dir}"
    if base is not None:
        rows.append((f"bare tshark -T fields ({len(BARE_FIELDS)} fields), one pass", base))
    with tempfile.TemporaryDirectory(prefix="bench-report-large-") as tmp:
        env = dict(os.environ, DNSKIT_CACHE=str(Path(tmp) / "cache"))
        cmd = [sys.executable, "-m", "kit", "report", capture_dir, "-o", f"{tmp}/r.html"]
        rows.append(("dnskit report, cold (capture read, cache empty)", _measured(cmd, env)))
        rows.append(("dnskit report, warm (capture from the cache)", _measured(cmd, env)))
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"{capture_dir}: {len(files)} file(s), {size:.0f} MiB; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| case | wall s | x tshark | peak RSS, largest process MiB | x tshark "
          "| peak RSS, process tree MiB | x tshark |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    b = base or (float("nan"),) * 3  # no tshark pass: no ratios
    for name, (wall, one, tree) in rows:
        print(
            f"| {name} | {wall:.1f} | {wall / b[0]:.2f} | {one:.0f} | {one / b[1]:.2f} "
            f"| {tree:.0f} | {tree / b[2]:.2f} |"
        )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1, help="repetitions per case (median shown)")
    ap.add_argument("--artefacts", default="data/sample", help="artefacts for the report case")
    ap.add_argument("--capture-dir", help="a folder with a real-size capture: report vs tshark")
    ap.add_argument(
        "--skip-tshark", action="store_true", help="with --capture-dir: the report alone"
    )
    args = ap.parse_args()
    if args.capture_dir:
        return _large(args.capture_dir, tshark_pass=not args.skip_tshark)

    import kit.report as report
    from kit.report import html as report_html

    rows: list[tuple[str, list[float], str]] = []
    rows.append(("kernel", _timed(_papermill_cell("1 + 1"), args.reps), "baseline"))
    rows.append(
        (
            "kernel+imports",
            _timed(_papermill_cell("import polars, altair, kit\n1 + 1"), args.reps),
            "",
        )
    )
    svg = (
        "import altair as alt, polars as pl; alt.renderers.enable('svg'); "
        "c = alt.Chart(pl.DataFrame({'x': [1, 2]})).mark_bar().encode(x='x:Q'); "
        "c._repr_mimebundle_()"
    )
    rows.append(
        (
            "first SVG (fresh interpreter)",
            _timed(lambda: subprocess.run([sys.executable, "-c", svg], check=True), args.reps),
            "",
        )
    )

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmpdir = Path(tmp)
        start_here = REPO / "notebooks" / "00-start-here.py"
        res = report.render(
            [start_here],
            output_html=tmpdir / "warm.html",
            executed_dir=tmpdir / "ex",
            artefacts=[args.artefacts],
        )
        import nbformat

        executed = nbformat.read(tmpdir / "ex" / "00-start-here.ipynb", as_version=4)
        header = "<p>bench</p>"
        combined = report_html._combine([(res.runs[0], executed)], "bench")
        rows.append(
            (
                "export (nbconvert, 00-start-here)",
                _timed(lambda: report_html._export_html(combined, header), args.reps),
                "",
            )
        )
        # per-notebook overhead, the term that grows with the number of notebooks: the same
        # notebook 4 times, in one shared kernel (default) and in a kernel each (--isolated)
        nb4 = [str(start_here)] * 4
        for mode in ("shared", "isolated"):
            cmd4 = [sys.executable, "-m", "kit", "report", args.artefacts]
            cmd4 += [x for nb in nb4 for x in ("--notebook", nb)]
            cmd4 += ["-o", str(tmpdir / f"x4-{mode}.html")]
            cmd4 += ["--isolated"] if mode == "isolated" else []
            rows.append(
                (
                    f"report: 4 x 00-start-here, {mode} kernel",
                    _timed(
                        lambda cmd4=cmd4: subprocess.run(
                            cmd4, check=False, cwd=REPO, stderr=subprocess.DEVNULL
                        ),
                        args.reps,
                    ),
                    "",
                )
            )
        notebooks = report.default_notebooks()
        for jobs in (1, 2):
            cmd = [
                sys.executable,
                "-m",
                "kit",
                "report",
                args.artefacts,
                "-j",
                str(jobs),
                "-o",
                str(tmpdir / "report.html"),
            ]
            rows.append(
                (
                    f"report: dnskit report {args.artefacts} -j {jobs} "
                    f"({len(notebooks)} notebooks + HTML)",
                    _timed(
                        lambda cmd=cmd: subprocess.run(
                            cmd, check=False, cwd=REPO, stderr=subprocess.DEVNULL
                        ),
                        args.reps,
                    ),
                    "",
                )
            )
        size = (tmpdir / "report.html").stat().st_size

    kernel = statistics.median(rows[0][1])
    print(f"report pipeline, {args.reps} rep(s) per case, median wall seconds")
    print(
        f"{os.cpu_count()} CPUs; load = 1-min load average when the case started (>1 per CPU: busy)"
    )
    kernel_cpu = statistics.median(CPU[0])
    print(
        f"| case | seconds | x kernel | x target ({TARGET_S:.0f} s) | CPU s | CPU x kernel "
        "| reps (wall s) | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for i, (name, times, note) in enumerate(rows):
        med = statistics.median(times)
        cpu = statistics.median(CPU[i])
        reps = ", ".join(f"{t:.2f}" for t in times)
        label = f"{name} ({note})" if note else name
        print(
            f"| {label} | {med:.2f} | {med / kernel:.2f} | {med / TARGET_S:.3f} | {cpu:.2f} "
            f"| {cpu / kernel_cpu:.2f} | {reps} | {LOADS[i]:.1f} |"
        )
    print(f"report size: {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
