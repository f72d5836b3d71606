"""Seeded mutation fuzzing of the kit's file loaders (issue 14): broken input must never give a raw
exception, a hang, or lost units.

Each loader gets inputs made by damaging real files (tests/data, data/sample, ../shared/fixtures):
byte and bit flips, truncation, duplicated and shuffled lines, NUL/CR/invalid UTF-8, non-ASCII
digits, huge numbers, deep JSON nesting, very long lines, other encodings (UTF-16, Latin-1),
another loader's file, gzip (whole, truncated, corrupt, with junk, bombs), plus a fixed set of
file-system cases (directory, dangling symlink, symlink loop, FIFO, /dev/zero, /dev/null, an
import/include of those). Inputs are cut to 12 MiB. Input ``i`` of loader ``L`` depends only on ``(seed, L, i)``, so any
finding is reproduced with ``--only L:i``.

Every input runs in a worker process under an address-space cap (RLIMIT_AS) and a time limit;
a worker that hangs or dies is replaced, and each worker serves at most 100 inputs (a long-lived
process fragments its address space). An input whose worker died is retried once in a fresh
worker ("retried" in the table); only one that dies again counts as a crash. Each outcome is one
of:

- ``ok``: a result, no warning;
- ``warning``: a result and a :class:`~kit.errors.KitWarning` (counted rejects, damage notes);
- ``kit_error``: a :class:`~kit.errors.KitError` (it names the file, and the position when
  there is one);
- ``raw``: any other exception (a bug), ``hang``: over the time limit, ``crash``: the worker died
  (out of memory under the cap, a signal), ``lost``: the result does not account for every
  input unit (CoreDNS and unbound logs: the records' ``line_no`` must cover the file's lines
  ``1..N`` exactly once, apart from lines joined into a record or a file skipped as binary;
  the newer readers: their own accounting, see :func:`_new_lost`).

Usage::

    python tools/fuzz.py                 # CI budget: 400 inputs per text loader, 40 per new reader
    python tools/fuzz.py --long --loaders dnstap,k8s,node,zeek,gadget   # the newer readers
    python tools/fuzz.py --long          # 10,000 inputs per loader, captures too; by hand
    python tools/fuzz.py --long --loaders capture   # read_capture only (~0.3 s per input)

Captures (``capture``, long mode only) are real pcap/pcapng files damaged by
:func:`capture_mutation`; odd inputs are read with ``engine="tshark"``, even ones with ``"auto"``
(the native engine, tshark where it refuses). ``lost`` there means a file's packets are not
all accounted for (``packets_kept + packets_skipped != packets``, or rows != kept), and a
KitError that does not name the file counts as ``raw``; a tool stopped at its time limit (20 s
in the worker) is a ``hang``.
    python tools/fuzz.py --only coredns:1234 --keep bench/out/fuzz   # one input, kept on disk

Exit status 0 when there is no raw exception, hang, crash or lost unit; 1 otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "fixtures"

#: The text loaders, fuzzed in the CI budget (tests/test_fuzz.py) and in the long mode.
TEXT_LOADERS = ("coredns", "corefile", "unbound_log", "unbound_conf", "metrics")
#: Readers added later (dnstap, Kubernetes snapshots, node evidence, Zeek and Inspektor Gadget
#: DNS records): the same mutators, each reader's own accounting as the lost-units check. In the
#: default (CI) run too, with a smaller budget (``--new-inputs``; tests/test_fuzz.py).
NEW_LOADERS = ("dnstap", "k8s", "node", "zeek", "gadget")
#: Binary seeds: mutated whole, not cut to their first 400 lines.
BINARY_LOADERS = ("capture", "dnstap")
#: ``capture`` (read_capture) is in the long mode only: every other input runs tshark (~0.3-1 s),
#: so its CI budget is the ~45 s mini fuzz of tests/test_capture_robustness.py, which uses the
#: same mutations (:func:`capture_mutation`).
LOADERS = (*TEXT_LOADERS, *NEW_LOADERS, "capture")
BAD = ("raw", "hang", "crash", "lost")
OUTCOMES = ("ok", "warning", "kit_error", *BAD)


# ------------------------------------------------------------------------------------------------
# Seeds


def _files(*patterns: str, root: Path = REPO) -> list[Path]:
    out: list[Path] = []
    for pat in patterns:
        out.extend(sorted(p for p in root.glob(pat) if p.is_file()))
    return out


def seed_files() -> dict[str, list[Path]]:
    """Real files each loader is fuzzed from (../shared/fixtures when present)."""
    shared = SHARED.is_dir()
    seeds = {
        "coredns": _files("tests/data/coredns/*.log", "tests/data/findings/errors_*.log")
        + (_files("logs/*.log", root=SHARED) if shared else []),
        "corefile": _files(
            "tests/data/corefile/*.Corefile",
            "tests/data/corefile/*.yaml",
            "tests/data/corefile/node_cache_startup.log",
            "tests/data/findings/Corefile.*",
            "tests/data/report/Corefile",
        )
        + ([SHARED / "nodelocaldns_corefiles.txt"] if shared else []),
        "unbound_log": _files("tests/data/unbound/*.log", "tests/data/detect/unbound_*.log")
        + _files("data/sample/logs/unbound-node1.log"),
        "unbound_conf": _files(
            "data/sample/configs/unbound*.conf",
            "tests/data/upstream/two-upstreams-unbound.conf",
            "tests/data/detect/unbound.conf",
        ),
        "metrics": _files("tests/data/metrics/*", "data/sample/prometheus/*.json")
        + (_files("metrics/*", root=SHARED) if shared else []),
        "capture": (_files("pcaps/*", root=SHARED) if shared else [])
        + _files("tests/data/capture/*.pcap*", "data/sample/captures/node2.pcap"),
        "dnstap": _files("data/scenarios/*/dnstap/*.fstrm", "tests/data/dnstap/*.fstrm"),
        "k8s": _files("tests/data/k8s/*.json", "tests/data/k8s/*.txt", "data/scenarios/*/k8s/*"),
        "node": _files("tests/data/node/*/*.txt", "data/scenarios/*/node/*/*.txt"),
        "zeek": _files("tests/data/zeek/*.log"),
        "gadget": _files("tests/data/gadget/*.json*"),
    }
    return {k: [p for p in v if p.stat().st_size > 0] for k, v in seeds.items()}


def load_seeds() -> dict[str, list[bytes]]:
    """Seed contents; long files are cut to their first 400 lines (mutations stay fast)."""
    out: dict[str, list[bytes]] = {}
    for loader, paths in seed_files().items():
        blobs = []
        for p in paths:
            data = p.read_bytes()
            if loader in BINARY_LOADERS:  # whole files (the largest capture, node2, is 1 MB)
                blobs.append(data)
                continue
            if data.startswith(b"\x1f\x8b"):
                data = gzip.decompress(data)
            lines = data.splitlines(keepends=True)
            blobs.append(b"".join(lines[:400]))
        out[loader] = blobs
    return out


# ------------------------------------------------------------------------------------------------
# Mutators: bytes -> bytes, driven by one random.Random

_SPECIAL = [
    b"\x00",
    b"\r",
    b"\r\n",
    b"\n",
    b"\xff",
    b"\xfe\xff",
    b"\xc3(",
    b"\xed\xa0\x80",  # a UTF-16 surrogate in UTF-8: invalid
    b"\xe2\x80\xa8",  # LINE SEPARATOR
    b"\xef\xbb\xbf",  # BOM
    b"\x1b[31m",
    b"\t",
    "\u0661\u0662\u0663".encode(),  # ARABIC-INDIC digits
    "\uff11".encode(),  # FULLWIDTH DIGIT ONE
    b"\\",
    b'"',
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b"#",
    b":",
    b";",
    b",",
    b"<script>",
    b"%s%n",
    b"{$HOME}",
    b"__PILLAR__DNS__SERVER__",
]
_NUMBERS = [
    b"0",
    b"-0",
    b"-1",
    b"65536",
    b"4294967296",
    b"18446744073709551616",
    b"9" * 400,
    b"1" * 4400,
    b"1e999",
    b"-1e999",
    b"NaN",
    b"+Inf",
    b"0x10",
    b"1_000",
    b"\xd9\xa1\xd9\xa2",
    b"99999999999999999999.5",
]
_KEYWORDS = [
    b"import *\n",
    b"import /dev/zer*\n",
    b"import nope.d/*\n",
    b"include: *\n",
    b"include: /dev/zero\n",
    b"include-toplevel: ../*\n",
    b"forward-zone:\n name: .\n forward-addr: 1.2.3.4@99999\n",
    b"server:\n port: x\n",
    b"(snip) {\n",
    b".:53 {\n",
    b'{"log":"x","stream":"stdout","time":"2020-01-01T00:00:00Z"}\n',
    b"2020-01-01T00:00:00.1Z stdout P ",
    b"# EOF\n",
    b"# TYPE x histogram\n",
    b'x_bucket{le="+Inf"} 1 1\n',
    b"Time,Value\n",
    b"sep=;\n",
    b'{"status":"success","data":{"resultType":"matrix","result":[]}}',
]


@dataclass
class Mutator:
    name: str
    fn: Callable[[random.Random, bytes, dict[str, list[bytes]], bool], bytes]
    weight: int = 3


def _pos(rng: random.Random, data: bytes) -> int:
    return rng.randint(0, len(data)) if data else 0


def m_flip(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def m_bitflip(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    b = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_delete(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    i = _pos(rng, data)
    return data[:i] + data[i + rng.randint(1, 200) :]


def m_duplicate(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    i, j = sorted((_pos(rng, data), _pos(rng, data)))
    k = _pos(rng, data)
    return data[:k] + data[i:j] * rng.randint(1, 4) + data[k:]


def m_truncate(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    return data[: _pos(rng, data)]


def m_special(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    for _ in range(rng.randint(1, 6)):
        i = _pos(rng, data)
        data = data[:i] + rng.choice(_SPECIAL) * rng.choice((1, 1, 2, 7)) + data[i:]
    return data


def m_number(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    digits = [i for i, c in enumerate(data) if 48 <= c <= 57]
    if not digits:
        return data + rng.choice(_NUMBERS)
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(digits)
        j = i
        while j < len(data) and 48 <= data[j] <= 57:
            j += 1
        data = data[:i] + rng.choice(_NUMBERS) + data[j:]
        digits = [d for d in digits if d < len(data) and 48 <= data[d] <= 57] or [0]
    return data


def m_lines(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    lines = data.splitlines(keepends=True)
    if len(lines) < 2:
        return data + data
    op = rng.randrange(4)
    if op == 0:
        rng.shuffle(lines)
    elif op == 1:
        i = rng.randrange(len(lines))
        lines[i:i] = [lines[i]] * rng.randint(2, 50)
    elif op == 2:
        i = rng.randrange(len(lines))
        del lines[i : i + rng.randint(1, 10)]
    else:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def m_long_line(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    n = rng.choice((10_000, 100_000, 1_000_000) + ((10_000_000,) if long else ()))
    unit = rng.choice((b"a", b"9", b" ", b"[", b"{", b"\xff", b"\x00", b"a.", b'"', b","))
    i = _pos(rng, data)
    return data[:i] + unit * (n // len(unit)) + data[i:]


def m_nest(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    depth = rng.choice((1000, 10_000, 100_000))
    inner = rng.choice((b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth))
    i = _pos(rng, data)
    if rng.random() < 0.5:
        inner = b'{"log": ' + inner + b"}\n"
    return data[:i] + inner + data[i:]


def m_encoding(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    text = data.decode("utf-8", "replace")
    enc = rng.choice(("utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "cp1252"))
    return text.encode(enc, "replace")


def m_line_endings(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    return data.replace(b"\n", rng.choice((b"\r\n", b"\r", b"\n\n", b"\x00", b"\x85")))


def m_other_type(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    other = rng.choice([b for v in seeds.values() for b in v])
    if rng.random() < 0.5:
        return other
    i, j = _pos(rng, data), _pos(rng, other)
    return data[:i] + other[j:]


def m_keyword(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    lines = data.splitlines(keepends=True)
    i = rng.randint(0, len(lines))
    lines[i:i] = [rng.choice(_KEYWORDS)]
    return b"".join(lines)


def m_blank(rng, data, seeds, long):  # type: ignore[no-untyped-def]
    return rng.choice((b"", b"\n", b" \n\t\n", b"\x00" * 100, b"\r\n" * 1000, b"\n" * 200_000))


MUTATORS = [
    Mutator("flip", m_flip, 5),
    Mutator("bitflip", m_bitflip, 3),
    Mutator("delete", m_delete, 3),
    Mutator("duplicate", m_duplicate, 3),
    Mutator("truncate", m_truncate, 3),
    Mutator("special", m_special, 6),
    Mutator("number", m_number, 5),
    Mutator("lines", m_lines, 4),
    Mutator("long_line", m_long_line, 1),
    Mutator("nest", m_nest, 1),
    Mutator("encoding", m_encoding, 1),
    Mutator("line_endings", m_line_endings, 1),
    Mutator("other_type", m_other_type, 2),
    Mutator("keyword", m_keyword, 3),
    Mutator("blank", m_blank, 1),
]


#: Kinds of damage done to a capture, as often as listed.
CAPTURE_KINDS = (
    "flip",
    "flip",
    "truncate",
    "tiny",
    "duplicate",
    "zero",
    "header",
    "magic",
    "splice",
    "gzip",
)


def capture_mutation(rng: random.Random, data: bytes, others: list[bytes]) -> tuple[str, bytes]:
    """One damaged copy of the capture ``data``: (kind of damage, bytes). Byte flips, a cut
    anywhere or inside the file header / first block, duplicated or zeroed ranges, the header
    fields after the magic, the magic, this file's start spliced onto another capture's end, a
    gzip stream cut or corrupted."""
    n = len(data)
    if n < 48:  # a mutation of a mutation cut to a few bytes: grow it with a real capture's tail
        other = rng.choice(others)
        return "grow", data + other[rng.randrange(len(other)) :]
    kind = rng.choice(CAPTURE_KINDS)
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    elif kind == "truncate":
        del b[rng.randrange(1, n) :]
    elif kind == "tiny":  # inside or just past the file header / first block
        del b[rng.randrange(1, 80) :]
    elif kind == "magic":  # the magic number or the pcapng byte-order magic
        b[rng.choice([0, 1, 2, 3, 8, 9, 10, 11])] ^= 1 << rng.randrange(8)
    elif kind == "splice":  # this file's start, another capture's end
        other = rng.choice(others)
        b = b[: rng.randrange(1, n)] + other[rng.randrange(len(other)) :]
    elif kind == "duplicate":
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 2000))
        k = rng.randrange(n)
        b[k:k] = b[i:j]
    elif kind == "zero":
        i = rng.randrange(n)
        j = min(n, i + rng.randint(1, 500))
        b[i:j] = bytes(j - i)
    elif kind == "header":  # the fields right after the magic: version, snaplen, link type
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(4, min(n, 40))
            b[i] = rng.randrange(256)
    else:
        z = bytearray(gzip.compress(bytes(b), mtime=0))
        if rng.random() < 0.5:
            del z[rng.randrange(10, len(z)) :]
        else:
            i = rng.randrange(10, len(z))
            z[i] ^= rng.randrange(1, 256)
        b = z
    return kind, bytes(b)


def _fstrm_split(data: bytes) -> tuple[list[tuple[bool, bytes]], bytes] | None:
    """A Frame Streams file as [(is_control, payload)] and the bytes after the last whole frame;
    None when the framing does not parse (a mutated seed)."""
    frames: list[tuple[bool, bytes]] = []
    i, n = 0, len(data)
    while i + 4 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        if length == 0:  # escape: a control frame follows
            if i + 8 > n:
                break
            clen = int.from_bytes(data[i + 4 : i + 8], "big")
            if i + 8 + clen > n:
                return None
            frames.append((True, data[i + 8 : i + 8 + clen]))
            i += 8 + clen
        else:
            if i + 4 + length > n:
                return None
            frames.append((False, data[i + 4 : i + 4 + length]))
            i += 4 + length
    return frames, data[i:]


def _fstrm_join(frames: list[tuple[bool, bytes]], tail: bytes) -> bytes:
    out = bytearray()
    for control, payload in frames:
        if control:
            out += bytes(4) + len(payload).to_bytes(4, "big") + payload
        else:
            out += len(payload).to_bytes(4, "big") + payload
    return bytes(out + tail)


#: What :func:`dnstap_mutation` does inside a data frame's payload, as often as listed.
DNSTAP_KINDS = ("flip", "flip", "flip", "delete", "insert", "varint", "truncate", "splice")


def dnstap_mutation(rng: random.Random, data: bytes) -> tuple[str, bytes] | None:
    """Damage inside one to three data frames of a dnstap file with the framing kept whole (each
    frame's length rewritten to fit), so the damage reaches the protobuf and DNS parsing instead
    of the framing: byte flips, a deleted or inserted range, a byte turned into a long or
    overlong varint, the payload cut short, a range of another frame spliced in. None when
    ``data`` is not a whole Frame Streams file (then the generic mutators run)."""
    split = _fstrm_split(data)
    if split is None:
        return None
    frames, tail = split
    data_frames = [k for k, (control, p) in enumerate(frames) if not control and p]
    if not data_frames:
        return None
    kinds = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        k = rng.choice(data_frames)
        b = bytearray(frames[k][1])
        n = len(b)
        kind = rng.choice(DNSTAP_KINDS)
        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8) if rng.random() < 0.6 else rng.randrange(1, 256)
        elif kind == "delete":
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 16)]
        elif kind == "insert":
            i = rng.randrange(n + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "varint":  # a byte turned into a 10-byte varint (values up to 2^70)
            i = rng.randrange(n)
            b[i : i + 1] = bytes([0xFF] * rng.randint(1, 10) + [rng.randrange(128)])
        elif kind == "truncate":
            del b[rng.randrange(n) :]
        else:
            other = frames[rng.choice(data_frames)][1]
            i, j = rng.randrange(n + 1), rng.randrange(len(other))
            b[i:i] = other[j : j + rng.randint(1, 64)]
        frames[k] = (False, bytes(b))
        kinds.append(kind)
    return "frame_" + "+".join(kinds), _fstrm_join(frames, tail)


def _gzip_stage(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Maybe gzip the input, and maybe damage the gzip stream."""
    r = rng.random()
    if r < 0.85:
        return data, ""
    blob = gzip.compress(data, compresslevel=rng.choice((1, 6, 9)), mtime=0)
    kind = rng.choice(("whole", "truncated", "corrupt", "junk", "members", "header"))
    if kind == "truncated":
        blob = blob[: rng.randint(2, max(2, len(blob) - 1))]
    elif kind == "corrupt" and len(blob) > 12:
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(10, len(b))] ^= 1 << rng.randrange(8)
        blob = bytes(b)
    elif kind == "junk":
        blob += rng.choice((b"\x00" * 512, b"junk after the stream", b"\x1f\x8b"))
    elif kind == "members":
        blob += gzip.compress(data[: len(data) // 2], mtime=0)
    elif kind == "header":
        blob = b"\x1f\x8b" + bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
    return blob, f"gzip:{kind}"


_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """About 100 KB of gzip that expands to 96 MiB of newlines (over the 64 MiB floor)."""
    global _BOMB
    if _BOMB is None:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = b"\n" * (1 << 20)
        _BOMB = b"".join(c.compress(block) for _ in range(96)) + c.flush()
    return _BOMB


#: Mutated inputs are cut to this size: duplicating a 10 MB line 50 times makes a 500 MB file,
#: which measures the machine, not the loader.
MAX_INPUT_BYTES = 12 << 20


def make_input(
    seed: int, loader: str, index: int, seeds: dict[str, list[bytes]], *, long: bool
) -> tuple[bytes, str]:
    """Input ``index`` of ``loader`` and a short description of how it was made."""
    rng = random.Random(f"{seed}:{loader}:{index}")
    base_i = rng.randrange(len(seeds[loader]))
    data = seeds[loader][base_i]
    if loader == "capture":
        kinds = []
        for _ in range(rng.choice((1, 1, 1, 2))):
            kind, data = capture_mutation(rng, data, seeds[loader])
            kinds.append(kind)
        return data, f"seed{base_i} {'+'.join(kinds)}"
    if rng.random() < 0.002:
        return gzip_bomb(), f"seed{base_i} gzip_bomb"
    if loader == "dnstap" and rng.random() < 0.75:
        # mostly damage inside whole frames: byte-level mutators break the framing first, and
        # then only ~5 % of the inputs reached the protobuf/DNS parsing
        framed = dnstap_mutation(rng, data)
        if framed is not None:
            data, gz = _gzip_stage(rng, framed[1])
            return data, f"seed{base_i} {framed[0]}{' ' + gz if gz else ''}"
    names = []
    weights = [m.weight for m in MUTATORS]
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        m = rng.choices(MUTATORS, weights)[0]
        names.append(m.name)
        data = m.fn(rng, data, seeds, long)
    data = data[:MAX_INPUT_BYTES]
    data, gz = _gzip_stage(rng, data)
    return data, f"seed{base_i} {'+'.join(names)}{' ' + gz if gz else ''}"


#: File name suffixes of the new readers' inputs (the ones their folder expansion takes).
NEW_EXT = {"dnstap": ".fstrm", "k8s": ".json", "node": ".txt", "zeek": ".log", "gadget": ".json"}


def filesystem_cases(
    loader: str, root: Path, seeds: dict[str, list[bytes]]
) -> list[tuple[Path, str]]:
    """Fixed cases that are not file contents: folders, links, special files, imports of them."""
    root.mkdir(parents=True, exist_ok=True)
    ext = {
        "coredns": ".log",
        "unbound_log": ".log",
        "metrics": ".prom",
        "capture": ".pcap",
        **NEW_EXT,
    }.get(loader, "")
    out: list[tuple[Path, str]] = []

    def add(name: str, what: str) -> Path:
        p = root / f"{name}{ext}"
        out.append((p, what))
        return p

    (root / "emptydir").mkdir(exist_ok=True)
    out.append((root / "emptydir", "empty directory"))
    d = root / "mixed"
    d.mkdir(exist_ok=True)
    (d / f"good{ext}").write_bytes(seeds[loader][0])
    if not (d / f"fifo{ext}").exists():
        os.mkfifo(d / f"fifo{ext}")
    _link(d / f"zero{ext}", "/dev/zero")
    _link(d / f"dangling{ext}", str(root / "nowhere"))
    out.append((d, "directory with a FIFO, /dev/zero and a dangling link"))
    _link(add("dangling", "dangling symlink"), str(root / "nowhere"))
    loop = add("loop", "symlink loop")
    _link(loop, str(loop))
    fifo = add("fifo", "FIFO")
    if not fifo.exists():
        os.mkfifo(fifo)
    _link(add("zero", "symlink to /dev/zero"), "/dev/zero")
    _link(add("null", "symlink to /dev/null"), "/dev/null")
    out.append((Path("/dev/zero"), "/dev/zero"))
    if loader == "corefile":
        for target in ("/dev/zer*", "fifo*", "dangling*", "emptydir*", "loop*"):
            name = target.strip("/*").replace("/", "_")
            p = root / f"import_{name}.Corefile"
            p.write_bytes(b".:53 {\n    import " + target.encode() + b"\n}\n")
            out.append((p, f"import {target}"))
    if loader == "unbound_conf":
        for target in ("/dev/zero", "fifo*", "dangling*", "emptydir", "loop*"):
            name = target.strip("/*").replace("/", "_")
            p = root / f"include_{name}.conf"
            p.write_bytes(b"server:\n    include: " + target.encode() + b"\n")
            out.append((p, f"include: {target}"))
    if os.geteuid() != 0:  # root reads any file whatever its mode
        p = add("unreadable", "unreadable file (mode 000)")
        p.write_bytes(seeds[loader][0])
        p.chmod(0)
    return out


def _link(path: Path, target: str) -> None:
    if not path.is_symlink():
        path.symlink_to(target)


# ------------------------------------------------------------------------------------------------
# Worker: runs one loader on the paths it is sent, reports the outcome as JSON


def _expected_lines(data: bytes) -> int:
    """Physical lines: '\\n'-separated, a last line without newline counts."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _check_lines(line_nos: list[int], n: int, joined: int) -> str | None:
    """None when ``line_nos`` and the ``joined`` lines cover 1..n exactly once."""
    if len(set(line_nos)) != len(line_nos):
        return f"duplicate line_no ({len(line_nos) - len(set(line_nos))})"
    if line_nos and (min(line_nos) < 1 or max(line_nos) > n):
        return f"line_no outside 1..{n}: {min(line_nos)}..{max(line_nos)}"
    if len(line_nos) + joined != n:
        return f"{len(line_nos)} records + {joined} joined lines != {n} lines"
    return None


def _capture_lost(cap: Any) -> str | None:
    """None when every packet of every file is accounted for: kept + skipped = packets, one row
    of ``packets`` per kept packet, no frame number past the file's packets."""
    for m in cap.meta.iter_rows(named=True):
        if m["packets_kept"] + m["packets_skipped"] != m["packets"]:
            return f"kept {m['packets_kept']} + skipped {m['packets_skipped']} != {m['packets']}"
    if cap.meta["packets_kept"].sum() != cap.packets.height:
        return f"packets_kept {cap.meta['packets_kept'].sum()} != {cap.packets.height} rows"
    if cap.packets.height and cap.packets["frame"].max() > cap.meta["packets"].max():
        return "a frame number past the file's packets"
    return None


def _new_lost(loader: str, res: Any, data: bytes | None) -> str | None:
    """None when the new reader's own accounting covers every unit of ``data`` (the file's
    bytes after gzip; None for a folder or a special file): dnstap frames = control + kept +
    rejected and one ``messages`` row per kept message; Kubernetes items = pods + services +
    endpoint slices + nodes + skipped; node evidence lines = counter lines + other + rejected;
    Zeek records + other = lines and records = rows + rejected; Gadget records (JSON values)
    = events joined into rows + rejected. Line counts must also equal the file's."""
    if loader == "dnstap":
        for m in res.meta.iter_rows(named=True):
            parts = m["control_frames"] + m["messages_kept"] + m["messages_rejected"]
            if m["frames"] != parts:
                return f"frames {m['frames']} != control + kept + rejected {parts}"
        kept = int(res.meta["messages_kept"].sum())
        if res.messages.height != kept:
            return f"messages {res.messages.height} rows != messages_kept {kept}"
        return None
    if loader == "k8s":
        for m in res.meta.iter_rows(named=True):
            parts = m["pods"] + m["services"] + m["endpoint_slices"] + m["nodes"] + m["skipped"]
            if m["items"] != parts:
                return f"items {m['items']} != pods + services + slices + nodes + skipped {parts}"
        return None
    if loader == "node":
        if res.accounted != res.lines:
            return f"counter lines + other + rejected {res.accounted} != lines {res.lines}"
    elif loader == "zeek":
        if res.records + res.other != res.lines:
            return f"records {res.records} + other {res.other} != lines {res.lines}"
        if res.records != res.dns.height + res.rejected.height:
            return (
                f"records {res.records} != rows {res.dns.height} + rejected {res.rejected.height}"
            )
    else:  # gadget: the unit is a JSON value (an object may span lines, a line hold several)
        events = int(res.dns["events"].sum()) if res.dns.height else 0
        if res.records != events + res.rejected.height:
            return (
                f"records {res.records} != events joined {events} + rejected {res.rejected.height}"
            )
    if data is not None and res.lines != _expected_lines(data):
        return f"lines {res.lines} != {_expected_lines(data)} in the file"
    return None


def _run_one(loader: str, path: Path) -> dict[str, Any]:
    import warnings

    import kit
    from kit.errors import KitError, KitWarning
    from kit.sources._io import read_raw

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            if loader == "coredns":
                res = kit.read_coredns_log(path)
            elif loader == "corefile":
                res = kit.read_corefile(path)
            elif loader == "unbound_log":
                res = kit.read_unbound_log(path)
            elif loader == "unbound_conf":
                res = kit.read_unbound_conf(path)
            elif loader == "capture":
                engine = "tshark" if path.stem.endswith("1") else "auto"
                res = kit.read_capture(path, cache=False, progress=False, engine=engine)
            elif loader == "dnstap":
                res = kit.read_dnstap(path, strict=path.stem.endswith("0"))
            elif loader == "k8s":
                res = kit.read_k8s_snapshot(path)
            elif loader == "node":
                res = kit.read_node_evidence(path, strict=path.stem.endswith("0"))
            elif loader == "zeek":
                res = kit.read_zeek_dns(path, strict=path.stem.endswith("0"))
            elif loader == "gadget":
                res = kit.read_gadget_dns(path, strict=path.stem.endswith("0"))
            else:
                res = kit.read_metrics(path, strict=path.stem.endswith("0"))
        except KitError as exc:
            detail = f"{type(exc).__name__}: {exc}"[:300]
            if loader == "capture" and "did not finish" in str(exc):
                return {"outcome": "hang", "detail": detail}  # a tool over its time limit
            if loader == "capture" and path.name not in str(exc):
                return {"outcome": "raw", "detail": f"KitError not naming the file: {detail}"}
            return {"outcome": "kit_error", "detail": detail}
        except MemoryError:
            return {"outcome": "crash", "detail": "MemoryError under the address-space cap"}
        except Exception as exc:  # the bugs this harness looks for
            import traceback

            tb = traceback.extract_tb(exc.__traceback__)
            where = next(
                (
                    f"{Path(f.filename).name}:{f.lineno}"
                    for f in reversed(tb)
                    if "/kit/" in f.filename
                ),
                "?",
            )
            return {
                "outcome": "raw",
                "detail": f"{type(exc).__name__} at {where}: {exc}"[:300],
            }
    seconds = time.perf_counter() - t0
    kit_warnings = [w for w in seen if issubclass(w.category, KitWarning)]
    lost = None
    if loader in ("coredns", "unbound_log") and path.is_file():
        data = read_raw(path).data
        n = _expected_lines(data)
        if loader == "coredns":
            frames = (res.queries, res.errors, res.other, res.rejected)
            skipped = bool(res.files["skipped"].any())
            joined = int(res.files["joined_lines"].sum())
            nos = [x for f in frames for x in f["line_no"].to_list()]
            if skipped:
                lost = None if not nos else "a skipped file has records"
            else:
                lost = _check_lines(nos, n, joined)
                if lost is None and res.lines_read != n:
                    lost = f"lines_read {res.lines_read} != {n}"
        else:
            frames = (res.queries, res.received, res.other, res.rejected)
            nos = [x for f in frames for x in f["line_no"].to_list()]
            lost = _check_lines(nos, n, 0)
            if lost is None and res.lines != n:
                lost = f"lines {res.lines} != {n}"
    if loader == "capture":
        lost = _capture_lost(res)
    if loader in NEW_LOADERS:
        lost = _new_lost(loader, res, read_raw(path).data if path.is_file() else None)
    if lost:
        return {"outcome": "lost", "detail": lost, "seconds": seconds}
    return {
        "outcome": "warning" if kit_warnings else "ok",
        "detail": str(kit_warnings[0].message)[:200] if kit_warnings else "",
        "seconds": seconds,
    }


def worker_main(loader: str, address_space_mib: int) -> None:
    cap = address_space_mib << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import logging

    logging.disable(logging.CRITICAL)  # the loaders log damage; the outcome carries it
    # tools (tshark) stop well before the harness's own time limit: theirs is reported as a hang
    os.environ.setdefault("DNSKIT_TOOL_TIMEOUT_S", "20")
    import kit  # noqa: F401 - import once, before the first input

    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        try:
            res = _run_one(loader, Path(req["path"]))
        except MemoryError:
            res = {"outcome": "crash", "detail": "MemoryError under the address-space cap"}
        out.write(json.dumps(res) + "\n")
        out.flush()


class Worker:
    """One worker process for a loader; restarted after a hang or a crash."""

    #: inputs per worker process: a long-lived process fragments its address space, and the cap
    #: is meant for one input, not for the history of a thousand
    RECYCLE = 100

    def __init__(self, loader: str, mem_mib: int) -> None:
        self.loader = loader
        self.mem_mib = mem_mib
        self.proc: subprocess.Popen[str] | None = None
        self.served = 0
        self.retried = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", self.loader, "--mem", str(self.mem_mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, path: Path, timeout: float) -> dict[str, Any]:
        """The outcome of one input. A crash is retried once in a fresh worker, so that only an
        input that fails on its own, under the cap, counts as a crash."""
        res = self._run(path, timeout)
        if res["outcome"] == "crash":
            self.stop()
            self.retried += 1
            res = self._run(path, timeout)
            if res["outcome"] != "crash":
                res["retried"] = True
        return res

    def _run(self, path: Path, timeout: float) -> dict[str, Any]:
        if self.served >= self.RECYCLE:
            self.stop()
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start()
            self.served = 0
        self.served += 1
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        t0 = time.monotonic()
        try:
            proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return {"outcome": "crash", "detail": "worker died before the input"}
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"outcome": "hang", "detail": f"no answer within {timeout:.0f} s"}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            return {"outcome": "crash", "detail": f"worker died (exit status {code})"}
        res = json.loads(line)
        res.setdefault("seconds", time.monotonic() - t0)
        return res


# ------------------------------------------------------------------------------------------------
# Driver


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    slowest: float = 0.0
    slowest_input: str = ""


def fuzz(
    *,
    inputs: int,
    seed: int,
    loaders: tuple[str, ...],
    long: bool,
    timeout: float,
    mem_mib: int,
    keep: Path | None,
    only: tuple[str, int] | None = None,
    progress: bool = False,
    new_inputs: int | None = None,
) -> dict[str, Tally]:
    """Fuzz ``loaders``: ``inputs`` mutated inputs each (``new_inputs`` for :data:`NEW_LOADERS`
    when given) plus the file-system cases."""
    seeds = load_seeds()
    tallies = {name: Tally() for name in loaders}
    work = Path(tempfile.mkdtemp(prefix="dnskit-fuzz-"))
    try:
        for loader in loaders:
            if only is not None and only[0] != loader:
                continue
            worker = Worker(loader, mem_mib)
            tally = tallies[loader]
            t_loader = time.monotonic()
            cases: list[tuple[str, Path, str]] = []
            if only is None:
                for p, what in filesystem_cases(loader, work / loader / "fs", seeds):
                    cases.append(("fs", p, what))
            n_inputs = new_inputs if new_inputs is not None and loader in NEW_LOADERS else inputs
            indices = [only[1]] if only is not None else range(n_inputs)
            box = work / loader / "in"
            box.mkdir(parents=True, exist_ok=True)
            ext = {
                "coredns": ".log",
                "unbound_log": ".log",
                "unbound_conf": ".conf",
                "capture": ".pcap",
                **NEW_EXT,
            }.get(loader, "")
            try:
                for case in cases:
                    _record(
                        tally, loader, case[0], case[2], worker.run(case[1], timeout), None, keep
                    )
                for i in indices:
                    data, how = make_input(seed, loader, i, seeds, long=long)
                    # one input per folder: "include: *" and "import *" see only this file
                    for old in box.iterdir():
                        old.unlink()
                    # even/odd: read_metrics strict or not; read_capture auto or tshark engine
                    path = box / f"input{i % 2}{ext}"
                    path.write_bytes(data)
                    res = worker.run(path, timeout)
                    _record(tally, loader, str(i), how, res, data, keep)
                    if progress and (i + 1) % 500 == 0:
                        sys.stderr.write(
                            f"fuzz: {loader}: {i + 1}/{n_inputs} {dict(tally.counts)}\n"
                        )
            finally:
                worker.stop()
            tally.seconds = time.monotonic() - t_loader
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tallies


def _record(
    tally: Tally,
    loader: str,
    index: str,
    how: str,
    res: dict[str, Any],
    data: bytes | None,
    keep: Path | None,
) -> None:
    outcome = res["outcome"]
    tally.counts[outcome] += 1
    if float(res.get("seconds", 0.0)) > tally.slowest:
        tally.slowest = float(res.get("seconds", 0.0))
        tally.slowest_input = f"{index} ({how})"
    if res.get("retried"):
        tally.counts["retried"] += 1
    if outcome in BAD:
        finding = {"loader": loader, "input": index, "how": how, **res}
        tally.findings.append(finding)
        sys.stderr.write(f"fuzz: {outcome}: {loader} input {index} ({how}): {res.get('detail')}\n")
        if keep is not None and data is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"{loader}-{index}.bin").write_bytes(data)


def _table(tallies: dict[str, Tally]) -> str:
    head = (
        f"{'loader':<13}"
        + "".join(f"{o:>10}" for o in ("inputs", *OUTCOMES))
        + f"{'retried':>9}{'slowest':>9}{'total':>9}"
    )
    rows = [head, "-" * len(head)]
    for name, t in tallies.items():
        total = sum(t.counts.get(o, 0) for o in OUTCOMES)
        rows.append(
            f"{name:<13}{total:>10}"
            + "".join(f"{t.counts.get(o, 0):>10}" for o in OUTCOMES)
            + f"{t.counts.get('retried', 0):>9}{t.slowest:>8.1f}s{t.seconds:>8.0f}s"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--inputs", type=int, default=None, help="inputs per loader (400; --long 10000)"
    )
    ap.add_argument(
        "--new-inputs",
        type=int,
        default=None,
        help=f"inputs per reader of {NEW_LOADERS} (40; --long: as --inputs)",
    )
    ap.add_argument("--long", action="store_true", help="10,000 inputs per loader, 10 MB lines")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument(
        "--loaders",
        default=None,
        help=f"comma list of {LOADERS} (default: all with --long, else all but capture)",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per input (hang)")
    ap.add_argument("--mem", type=int, default=4096, help="address-space cap per worker, MiB")
    ap.add_argument("--keep", type=Path, default=None, help="save inputs with findings here")
    ap.add_argument("--json", type=Path, default=None, help="write the summary as JSON here")
    ap.add_argument("--only", default=None, help="LOADER:INDEX, run that one input")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.mem)
        return 0
    chosen = args.loaders or ",".join(LOADERS if args.long else (*TEXT_LOADERS, *NEW_LOADERS))
    loaders = tuple(x for x in chosen.split(",") if x)
    unknown = set(loaders) - set(LOADERS)
    if unknown:
        ap.error(f"unknown loaders {sorted(unknown)}; choose from {LOADERS}")
    inputs = args.inputs if args.inputs is not None else (10_000 if args.long else 400)
    new_inputs = args.new_inputs
    if new_inputs is None and not args.long:
        new_inputs = 40 if args.inputs is None else inputs
    only = None
    if args.only:
        name, _, idx = args.only.partition(":")
        only = (name, int(idx))
        loaders = (name,)
    t0 = time.monotonic()
    tallies = fuzz(
        inputs=inputs,
        seed=args.seed,
        loaders=loaders,
        long=args.long,
        timeout=args.timeout,
        mem_mib=args.mem,
        keep=args.keep,
        only=only,
        progress=args.long,
        new_inputs=new_inputs,
    )
    print(
        f"fuzz: seed {args.seed}, {inputs} mutated inputs per loader"
        + (f" ({new_inputs} per new reader)" if new_inputs is not None else "")
        + " + file-system cases, "
        f"{'long' if args.long else 'CI'} mode, {args.timeout:.0f} s and {args.mem} MiB per input, "
        f"{time.monotonic() - t0:.0f} s"
    )
    print(_table(tallies))
    for name, t in tallies.items():
        print(f"  slowest {name}: {t.slowest:.1f} s, input {t.slowest_input}")
    findings = [f for t in tallies.values() for f in t.findings]
    for f in findings[:50]:
        print(
            f"  {f['outcome']}: {f['loader']} input {f['input']} ({f['how']}): {f.get('detail', '')}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "inputs": inputs,
                    "new_inputs": new_inputs,
                    "long": args.long,
                    "loaders": {
                        k: {
                            "counts": dict(t.counts),
                            "seconds": t.seconds,
                            "slowest": t.slowest,
                            "slowest_input": t.slowest_input,
                        }
                        for k, t in tallies.items()
                    },
                    "findings": findings,
                },
                indent=2,
            )
        )
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
