"""Run every benchmark in bench/ (bench_*.py) one after the other and print their tables.

Each benchmark measures the kit against its named baselines in the same run and reports ratios,
since machines here are shared and noisy. Usage: ``python bench/run.py [NAME ...]`` where NAME is
e.g. ``coredns`` for bench/bench_coredns.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    if not scripts:
        sys.stderr.write("no benchmark matched\n")
        return 2
    failed = 0
    for script in scripts:
        sys.stdout.write(f"\n=== {script.name} ===\n")
        sys.stdout.flush()
        failed += subprocess.call([sys.executable, str(script)], cwd=HERE.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
