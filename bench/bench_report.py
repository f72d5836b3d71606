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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1, help="repetitions per case (median shown)")
    ap.add_argument("--artefacts", default="data/sample", help="artefacts for the report case")
    args = ap.parse_args()

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
