"""The checks ``tools/sanitize.py fastcap`` runs on the native capture engine built with
AddressSanitizer and UndefinedBehaviorSanitizer (``make sanitize``; the build, the preloaded
sanitizer runtimes and the child process are ``tools/sanitize.py``'s):

- parses every capture the kit has (../shared/fixtures/pcaps when present, data/sample/captures,
  tests/data/capture) with that build and checks the rows, messages and file facts equal those of
  the normal build (``kit._fastcap``), whether it reads the file or refuses it (same reason);
- parses ``--inputs`` damaged copies of them (random bytes overwritten, cut anywhere, record
  lengths and pcapng block lengths changed), where it must read or refuse, never crash.

``.venv/bin/python tools/sanitize_fastcap.py [--inputs 3000]`` is ``tools/sanitize.py fastcap``.
"""

from __future__ import annotations

import random
import struct
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def corpus() -> list[Path]:
    files = sorted((ROOT / "tests" / "data" / "capture").glob("*.pcap*"))
    files += sorted((ROOT / "data" / "sample" / "captures").glob("*.pcap*"))
    files += sorted((ROOT.parent / "shared" / "fixtures" / "pcaps").glob("*"))
    return [f for f in files if f.is_file()]


def _data(path: Path) -> bytes:
    import gzip

    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _frames(mod: object, data: bytes, workers: int = 1) -> tuple[object, ...]:
    from kit.sources.capture._native import _frame

    reason, info, rows, msgs = mod.parse(data, (53,), workers)  # type: ignore[attr-defined]
    if reason is not None:
        return (reason,)
    return (info, _frame(rows), _frame(msgs))


def _mutate(rnd: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rnd.randrange(4)
    if kind == 0 and len(b) > 24:  # random bytes
        for _ in range(rnd.randrange(1, 16)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
    elif kind == 1:  # cut anywhere
        b = b[: rnd.randrange(len(b) + 1)]
    elif kind == 2 and len(b) > 40:  # a 32-bit length field somewhere gets a wild value
        off = rnd.randrange(0, len(b) - 4)
        b[off : off + 4] = struct.pack("<I", rnd.choice([0, 1, 11, 12, 65535, 2**31, 2**32 - 1]))
    elif len(b) > 60:  # DNS-ish: a length prefix / count / label byte near a packet's end
        off = rnd.randrange(40, len(b))
        b[off] = rnd.choice([0, 1, 0x3F, 0x40, 0xC0, 0xFF])
    return bytes(b)


def child(so: Path, mutations: int) -> int:
    """Run the checks with the sanitized build ``so`` (in ``tools/sanitize.py``'s child)."""
    from sanitize import load

    mod = load("fastcap", so)
    sys.path.insert(0, str(ROOT))
    from polars.testing import assert_frame_equal

    from kit.sources.capture import _native as _capture_native

    warnings.simplefilter("ignore")
    ref_mod = _capture_native._fastcap
    files = corpus()
    datas = [_data(f) for f in files]
    for f, data in zip(files, datas, strict=True):
        # one pass, and parallel within the file (threads sharing it out, merged in C)
        for workers in (1, 2, 3):
            got = _frames(mod, data, workers)
            if ref_mod is not None:
                ref = _frames(ref_mod, data)
                assert len(got) == len(ref), (f, workers)
                if len(ref) == 1:
                    assert got == ref, (f, workers, got, ref)
                else:
                    assert got[0] == ref[0], (f, workers)
                    assert_frame_equal(got[1], ref[1])  # type: ignore[arg-type]
                    assert_frame_equal(got[2], ref[2])  # type: ignore[arg-type]
    print(
        f"sanitize: {len(files)} captures, 1/2/3 workers: same results as the normal build's "
        "one pass, no report"
    )
    rnd = random.Random(1)
    read = 0
    for i in range(mutations):
        out = _frames(mod, _mutate(rnd, rnd.choice(datas)), 1 + i % 3)
        read += len(out) > 1
    print(
        f"sanitize: {mutations} damaged captures, 1/2/3 workers in turn ({read} read, the rest "
        "refused): no report"
    )
    return 0


if __name__ == "__main__":
    from sanitize import main

    raise SystemExit(main(["fastcap", *sys.argv[1:]]))
