"""Run the kit's C extensions under AddressSanitizer and UndefinedBehaviorSanitizer.

Usage (``make sanitize``)::

    .venv/bin/python tools/sanitize.py [NAME ...] [--inputs N]

``NAME`` is an extension, ``fastlog`` (``kit/_fastlog.c``, the CoreDNS-log tokenizer) or
``fastcap`` (``kit/_fastcap.c``, the capture engine); all of them when none is named. For each,
this builds ``kit/_NAME.c`` with ``-fsanitize=address,undefined`` into a temporary directory, then
runs the checks of ``tools/sanitize_NAME.py`` (its ``child(so, inputs)``) in a child Python with
libasan/libubsan preloaded:

- ``fastlog``: the kit's CoreDNS cases, the real logs of ../shared and a seeded hostile corpus
  through ``read_coredns_log`` with that build, at block sizes that cut lines anywhere, frames
  equal to the polars-only path's; then ``--inputs`` random damaged blocks through ``parse_block``;
- ``fastcap``: every capture the kit has, results equal to the normal build's; then ``--inputs``
  damaged captures, each read or refused, never a crash.

Any sanitizer report stops the child with a non-zero exit, and this exits non-zero. Not part of
``make test``: it takes minutes and several GB of memory (ASan's shadow memory under polars).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS = ("fastlog", "fastcap")
DEFAULT_INPUTS = 3000


def build(name: str, out: Path) -> Path:
    """``kit/_<name>.c`` built with ASan and UBSan as ``out/_<name><EXT_SUFFIX>``."""
    so = out / f"_{name}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    cmd = [
        "gcc",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=all",
        "-shared",
        "-fPIC",
        "-std=c11",
        "-Wall",
        "-Wextra",
        f"-I{sysconfig.get_paths()['include']}",
        str(ROOT / "kit" / f"_{name}.c"),
        "-o",
        str(so),
    ]
    subprocess.run(cmd, check=True)
    return so


def load(name: str, so: Path) -> ModuleType:
    """The sanitized build ``so`` imported as the module ``_<name>`` (in the child)."""
    spec = importlib.util.spec_from_file_location(f"_{name}", so)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(name: str, inputs: int) -> int:
    """Build extension ``name`` with the sanitizers and run its checks in a child; its exit code."""
    with tempfile.TemporaryDirectory() as d:
        so = build(name, Path(d))
        libs = [
            subprocess.run(
                ["gcc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True
            ).stdout.strip()
            for lib in ("libasan.so", "libubsan.so")
        ]
        env = dict(
            os.environ,
            LD_PRELOAD=":".join(libs),
            ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=64",
            UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        )
        cmd = [sys.executable, __file__, name, "--child", str(so), "--inputs", str(inputs)]
        return subprocess.run(cmd, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(EXTENSIONS)}")
    ap.add_argument(
        "--inputs",
        type=int,
        default=DEFAULT_INPUTS,
        help=f"random damaged inputs per extension (default {DEFAULT_INPUTS})",
    )
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    names = args.names or list(EXTENSIONS)
    for name in names:
        if name not in EXTENSIONS:
            ap.error(f"no extension {name!r} (one of {', '.join(EXTENSIONS)})")
    if args.child:  # in the child, with the sanitizer runtimes preloaded: one extension
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        checks = importlib.import_module(f"sanitize_{names[0]}")
        return int(checks.child(args.child, args.inputs))
    for name in names:
        code = run(name, args.inputs)
        if code:
            print(f"sanitize: {name} failed (exit {code})", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
