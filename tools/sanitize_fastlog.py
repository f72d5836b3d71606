"""The checks ``tools/sanitize.py fastlog`` runs on the native CoreDNS-log tokenizer built with
AddressSanitizer and UndefinedBehaviorSanitizer (``make sanitize``; the build, the preloaded
sanitizer runtimes and the child process are ``tools/sanitize.py``'s):

- the kit's CoreDNS cases, the real logs of ../shared (when present) and the seeded hostile
  corpus of tests/test_coredns_native.py through ``read_coredns_log`` with that build, at block
  sizes that cut lines anywhere, with frames equal to the polars-only path's;
- ``--inputs`` random slices of that corpus with random bytes overwritten through
  ``parse_block``, under every layout.

``.venv/bin/python tools/sanitize_fastlog.py [--inputs 3000]`` is ``tools/sanitize.py fastlog``.
"""

from __future__ import annotations

import random
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUTS = [
    (0, -1, -1, -1),
    (1, 0, -1, -1),
    (3, 0, 1, -1),
    (1, -1, -1, 0),
    (2, 1, -1, 0),
    (2, 1, -1, -1),
    (4, 3, 1, -1),
]


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
    """Run the checks with the sanitized build ``so`` (in ``tools/sanitize.py``'s child)."""
    from sanitize import load

    mod = load("fastlog", so)
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


if __name__ == "__main__":
    from sanitize import main

    raise SystemExit(main(["fastlog", *sys.argv[1:]]))
