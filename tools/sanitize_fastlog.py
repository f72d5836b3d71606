"""Run the native CoreDNS-log tokenizer under AddressSanitizer and UndefinedBehaviorSanitizer.

Usage (``make sanitize``)::

    .venv/bin/python tools/sanitize_fastlog.py [--blocks 3000]

Builds ``kit/_fastlog.c`` with ``-fsanitize=address,undefined`` into a temporary directory, then
re-runs this script in a child Python with libasan/libubsan preloaded, where it:

- reads the kit's CoreDNS cases, the real logs of ../shared (when present) and the seeded hostile
  corpus of tests/test_coredns_native.py through ``read_coredns_log`` with that build, at block
  sizes that cut lines anywhere, and checks the frames equal the polars-only path's;
- feeds ``parse_block`` random slices of that corpus with random bytes overwritten, under every
  layout, ``--blocks`` times.

Any sanitizer report stops the child with a non-zero exit. Not part of ``make test``: it takes a
few minutes and several GB of memory (ASan's shadow memory under polars).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SO = "_fastlog" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
LAYOUTS = [
    (0, -1, -1, -1),
    (1, 0, -1, -1),
    (3, 0, 1, -1),
    (1, -1, -1, 0),
    (2, 1, -1, 0),
    (2, 1, -1, -1),
    (4, 3, 1, -1),
]


def build(out: Path) -> Path:
    so = out / SO
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
        str(ROOT / "kit" / "_fastlog.c"),
        "-o",
        str(so),
    ]
    subprocess.run(cmd, check=True)
    return so


def corpus(tmp: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    import test_coredns_native as t

    files = sorted((ROOT / "tests" / "data" / "coredns").glob("*.log"))
    shared = ROOT.parent / "shared" / "fixtures" / "logs"
    files += sorted(shared.glob("*.log"))
    for seed in range(4):
        rnd = random.Random(seed)
        lines = [
            t._mutate(rnd, rnd.choice(t.PREFIXES) + rnd.choice(t.TEMPLATES)) for _ in range(3000)
        ]
        data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
        path = tmp / f"hostile_{seed}.log"
        path.write_bytes(data.replace(b"\xc2\x80", b"\x80", 50) + b"\r\n")
        files.append(path)
    return files


def child(so: Path, blocks: int) -> int:
    spec = importlib.util.spec_from_file_location("_fastlog", so)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.path.insert(0, str(ROOT))
    from polars.testing import assert_frame_equal

    import kit.sources.coredns as coredns

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as d:
        files = corpus(Path(d))
        for f in files:
            for chunk in (97, 4000, 1 << 24):
                with coredns._tokenizer(mod):
                    a = coredns.read_coredns_log(f, chunk_bytes=chunk)
                with coredns._tokenizer(None):
                    b = coredns.read_coredns_log(f, chunk_bytes=chunk)
                for name in ("queries", "errors", "other", "rejected", "files"):
                    assert_frame_equal(getattr(a, name), getattr(b, name))
        print(f"sanitize: {len(files)} files x 3 block sizes: same frames, no report", flush=True)
        base = b"".join(f.read_bytes() for f in files)
    rnd = random.Random(1)
    for _ in range(blocks):
        n = rnd.randrange(0, 600)
        off = rnd.randrange(0, max(1, len(base) - n))
        blk = bytearray(base[off : off + n])
        for _ in range(rnd.randrange(0, 6)):
            if blk:
                blk[rnd.randrange(len(blk))] = rnd.randrange(256)
        mod.parse_block(bytes(blk), rnd.randrange(0, len(blk) + 1), *rnd.choice(LAYOUTS))
    print(f"sanitize: {blocks} random blocks through parse_block: no report", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=3000)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.blocks)
    with tempfile.TemporaryDirectory() as d:
        so = build(Path(d))
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
        cmd = [sys.executable, __file__, "--child", str(so), "--blocks", str(args.blocks)]
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
