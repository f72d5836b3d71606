"""Broken and hostile input (issue 14): every loader gives a result, a counted reject, a warning or
a KitError naming the file and position; never a raw exception, a hang, or a silent loss.

The bad inputs are made here in tmp_path, most by damaging real files (data/sample, tests/data,
../shared/fixtures). Cases that hung or exhausted memory before the fix run in a child process
with a time limit and an address-space cap, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFileError, InputFormatError, KitError, KitWarning

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
SAMPLE = REPO / "data" / "sample"

UNBOUND_CONF = SAMPLE / "configs" / "unbound-node1.conf"
UNBOUND_LOG = SAMPLE / "logs" / "unbound-node1.log"
COREFILE = DATA / "corefile" / "node_cache_example.Corefile"
COREDNS_LOG = DATA / "coredns" / "default_modern.log"
METRICS_JSON = SAMPLE / "prometheus" / "p99_response_time_5s.json"

#: Every file loader of the public API, called the way a new user would.
LOADERS: dict[str, Callable[[Path], object]] = {
    "read_coredns_log": lambda p: kit.read_coredns_log(p),
    "read_corefile": lambda p: kit.read_corefile(p),
    "read_unbound_log": lambda p: kit.read_unbound_log(p),
    "read_unbound_conf": lambda p: kit.read_unbound_conf(p),
    "read_metrics": lambda p: kit.read_metrics(p),
}


def _run_isolated(code: str, *, timeout: float = 60, address_space: int = 3 << 30) -> dict:
    """Run ``code`` (which sets ``result``) in a child Python with a time limit and RLIMIT_AS.

    Returns ``{"ok": repr}`` or ``{"error": class name, "kit": bool, "message": str}``, or
    ``{"hang": seconds}`` / ``{"died": returncode, "stderr": ...}``.
    """
    wrapper = (
        "import json, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({address_space}, {address_space}))\n"
        "import kit\n"
        "from kit.errors import KitError\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "    out = {'ok': repr(result)}\n"
        "except BaseException as exc:\n"
        "    out = {'error': type(exc).__name__, 'kit': isinstance(exc, KitError),"
        " 'message': str(exc)[:2000]}\n"
        "sys.stdout.write(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", wrapper],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"hang": timeout}
    if proc.returncode != 0 or not proc.stdout:
        return {"died": proc.returncode, "stderr": proc.stderr[-2000:]}
    return json.loads(proc.stdout)


# ------------------------------------------------------------------------------------------------
# Silent or wrong


def test_truncated_gzip_unbound_conf_is_an_error_not_zero_rows(tmp_path: Path) -> None:
    blob = gzip.compress(UNBOUND_CONF.read_bytes())
    cut = tmp_path / "unbound.conf.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    # the whole file has forward rows: a cut one must not quietly give none
    assert kit.read_unbound_conf(UNBOUND_CONF).height > 0
    with pytest.raises(InputFormatError, match="truncated gzip") as info:
        kit.read_unbound_conf(cut)
    assert info.value.path == str(cut)


def test_damaged_gzip_unbound_log_counts_only_real_lines(tmp_path: Path) -> None:
    body = b"".join(UNBOUND_LOG.read_bytes().splitlines(keepends=True)[:400])
    blob = gzip.compress(body)
    cut = tmp_path / "unbound.log.gz"
    cut.write_bytes(blob[: len(blob) * 3 // 4])
    got = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    n = got.count(b"\n") + (0 if got.endswith(b"\n") else 1)
    with pytest.warns(KitWarning, match="truncated gzip"):
        res = kit.read_unbound_log(cut)
    # before: a pseudo-line "damaged gzip" was added to .rejected, lines = N + 1
    assert res.lines == n == res.records
    frames = (res.queries, res.received, res.other, res.rejected)
    line_nos = pl.concat([f.select("line_no") for f in frames])["line_no"].sort().to_list()
    assert line_nos == list(range(1, n + 1))
    assert len(res.notes) == 1 and "truncated gzip" in res.notes[0] and str(cut) in res.notes[0]
    with pytest.raises(InputFormatError, match="damaged gzip"):
        kit.read_unbound_log(cut, strict=True)


# ------------------------------------------------------------------------------------------------
# Raw tracebacks that must be KitErrors naming file and position


@pytest.mark.parametrize("value", ["fifty-three", "4294967296", "0", "-1", "5 3", "٥٣", "9" * 4400])
def test_unbound_conf_bad_port_names_file_and_line(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        f"server:\n    verbosity: 1\n    port: {value}\n"
        "forward-zone:\n    name: .\n    forward-addr: 10.0.0.1\n"
    )
    with pytest.raises(InputFormatError, match="port") as info:
        kit.read_unbound_conf(conf)
    assert (info.value.path, info.value.line) == (str(conf), 3)


def test_unbound_conf_server_flag_not_yes_no_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        "server:\n    tcp-upstream: -0\nforward-zone:\n    name: .\n    forward-addr: 10.0.0.1\n"
    )
    with pytest.raises(InputFormatError, match="tcp-upstream: expected yes or no") as info:
        kit.read_unbound_conf(conf)
    assert (info.value.path, info.value.line) == (str(conf), 2)


def test_unbound_include_error_names_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("just some notes\nnot a config\n")
    conf = tmp_path / "unbound.conf"
    conf.write_text("server:\n    verbosity: 1\n    include: notes.txt\n")
    with pytest.raises(InputFormatError) as info:
        kit.read_unbound_conf(conf)
    assert info.value.path == str(tmp_path / "notes.txt") and info.value.line == 1
    assert f"included from {conf}:3" in str(info.value)


def test_deeply_nested_json_coredns_line_is_a_counted_reject(tmp_path: Path) -> None:
    good = COREDNS_LOG.read_text().splitlines()[:3]
    # 60 KB: under MAX_LINE_BYTES (a longer line is rejected before any JSON decoding)
    deep = '{"log": ' + "[" * 30_000 + "]" * 30_000 + ', "stream": "stdout"}'
    log = tmp_path / "coredns.log"
    log.write_text("\n".join([good[0], deep, *good[1:]]) + "\n")
    with pytest.warns(KitWarning, match="did not parse"):
        res = kit.read_coredns_log(log)
    assert res.rejected["line_no"].to_list() == [2]
    assert "invalid JSON" in res.rejected["reason"][0]
    assert res.lines_read == 4 == res.records + int(res.files["joined_lines"].sum())


def test_non_ascii_digit_in_unbound_epoch_is_a_counted_reject(tmp_path: Path) -> None:
    lines = UNBOUND_LOG.read_text().splitlines()[:5]
    assert lines[2].startswith("[")
    lines[2] = lines[2].replace("1", "\u0661", 1)  # ARABIC-INDIC DIGIT ONE
    log = tmp_path / "unbound.log"
    log.write_text("\n".join(lines) + "\n")
    with pytest.warns(KitWarning, match="1 of 5 unbound log lines rejected"):
        res = kit.read_unbound_log(log)
    assert res.rejected["line_no"].to_list() == [3] and res.lines == 5 == res.records


def test_metrics_json_integer_over_4300_digits(tmp_path: Path) -> None:
    doc = json.loads(METRICS_JSON.read_text())
    text = json.dumps(doc, indent=1).replace('"status"', '"big": ' + "7" * 5000 + ', "status"', 1)
    bad = tmp_path / "p99.json"
    bad.write_text(text)
    for strict in (True, False):
        with pytest.raises(InputFormatError, match="JSON number too long") as info:
            kit.read_metrics(bad, strict=strict)
        assert info.value.path == str(bad) and info.value.line == 2


def test_long_digit_strings_found_by_the_fuzzer(tmp_path: Path) -> None:
    """``int()`` refuses over 4300 digits and ``float()`` over 1e308: each is a clean result."""
    # a Corefile server key port of 4400 digits: not a port (null), as "99999" is
    corefile = tmp_path / "Corefile"
    corefile.write_text(COREFILE.read_text().replace(".:53", ".:" + "5" * 4400, 1))
    cf = kit.read_corefile(corefile)
    assert [k.port for k in cf.blocks[0].keys] == [None]
    # a Grafana DataFrame JSON value that is an integer over 1e308
    doc = json.loads((DATA / "metrics" / "grafana_dataframe_list.json").read_text())
    doc[0]["data"]["values"][1][0] = "BIG"
    text = json.dumps(doc).replace('"BIG"', "7" * 400)
    bad = tmp_path / "grafana.json"
    bad.write_text(text)
    with pytest.raises(InputFormatError, match="int too large"):
        kit.read_metrics(bad)
    with pytest.warns(KitWarning, match="int too large"):
        df = kit.read_metrics(bad, strict=False)
    whole = kit.read_metrics(DATA / "metrics" / "grafana_dataframe_list.json")
    assert df.height == whole.height - 1
    # a coredns_build_info version label of 4400 digits
    frame = pl.DataFrame(
        {
            "ts": [0],
            "metric": ["coredns_build_info"],
            "value": [1.0],
            "source": ["x.prom"],
            "version": ["1." + "2" * 4400],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    from kit.sources.metrics.prometheus import coredns_versions

    assert coredns_versions(frame).height == 1


def test_grafana_csv_time_overflowing_to_infinity(shared_fixtures: Path, tmp_path: Path) -> None:
    good = shared_fixtures / "metrics" / "grafana_export_mpawlik_columns.csv"
    rows = good.read_text().splitlines()
    rows[1] = "9" * 400 + ";" + rows[1].split(";", 1)[1]  # epoch ms that is inf as a float
    bad = tmp_path / "grafana.csv"
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputFormatError, match="time out of range") as info:
        kit.read_metrics(bad)
    assert (info.value.path, info.value.line) == (str(bad), 2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        df = kit.read_metrics(bad, strict=False)
        whole = kit.read_metrics(good, strict=False)
    assert any("time out of range" in str(w.message) for w in seen)
    columns = len(rows[0].split(";")) - 1
    assert df.height == whole.height - columns


@pytest.mark.parametrize("kind", ["dangling symlink", "directory"])
def test_corefile_import_glob_matching_a_non_file(tmp_path: Path, kind: str) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "a.server").write_text("example.org:53 {\n    forward . 10.0.0.1\n}\n")
    if kind == "directory":
        (conf / "b.server").mkdir()
    else:
        (conf / "b.server").symlink_to(tmp_path / "gone.server")
    corefile = tmp_path / "Corefile"
    corefile.write_text(COREFILE.read_text() + "\nimport conf.d/*.server\n")
    line = len(COREFILE.read_text().splitlines()) + 2
    with pytest.raises(InputFormatError, match=kind) as info:
        kit.read_corefile(corefile)
    assert (info.value.path, info.value.line) == ("Corefile", line)
    assert str(conf / "b.server") in str(info.value)


# ------------------------------------------------------------------------------------------------
# Special files: every loader reads regular files only


@pytest.fixture
def special_files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    loop = tmp_path / "loop.log"
    loop.symlink_to(tmp_path / "loop.log")
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(tmp_path / "nowhere.log")
    zero = tmp_path / "zero.log"
    zero.symlink_to("/dev/zero")
    yield {
        "symlink loop": loop,
        "FIFO": fifo,
        "dangling symlink": dangling,
        "character device": zero,
        "character device ": Path("/dev/zero"),
    }


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_special_files_are_named_not_found_or_read(
    special_files: dict[str, Path], loader: str
) -> None:
    for kind, path in special_files.items():
        # before: "file not found" (expand_sources) or a read that never ends (/dev/zero)
        with pytest.raises(InputFileError, match=kind.strip()) as info:
            LOADERS[loader](path)
        assert info.value.path == str(path)
        assert "not found" not in str(info.value)


def test_corefile_import_of_dev_zero_does_not_read_forever(tmp_path: Path) -> None:
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n    import /dev/zer*\n    forward . 10.0.0.1\n}\n")
    got = _run_isolated(f"result = kit.read_corefile({str(corefile)!r})", timeout=60)
    assert got.get("error") == "InputFormatError", got
    assert "/dev/zero" in got["message"] and "character device" in got["message"]
    assert got["message"].startswith("Corefile:2:")


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="dnskit-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def _as_unprivileged(fn: Callable[[], object]) -> str:
    """``"ok"`` or ``"<Class>|<is KitError>|<message>"`` from ``fn()``, run as user nobody when
    the tests run as root (root reads any file regardless of its mode)."""

    def outcome() -> str:
        try:
            fn()
        except BaseException as exc:  # reported to the parent
            return f"{type(exc).__name__}|{isinstance(exc, KitError)}|{exc}"
        return "ok"

    if os.geteuid() != 0:
        return outcome()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, outcome().encode("utf-8", "replace"))
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "hang"
        time.sleep(0.02)
    with os.fdopen(r, "rb") as fh:
        return fh.read().decode()


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_unreadable_file_is_a_kit_error(world_readable_dir: Path, loader: str) -> None:
    src = {
        "read_coredns_log": COREDNS_LOG,
        "read_corefile": COREFILE,
        "read_unbound_log": UNBOUND_LOG,
        "read_unbound_conf": UNBOUND_CONF,
        "read_metrics": METRICS_JSON,
    }[loader]
    path = world_readable_dir / src.name
    shutil.copy(src, path)
    path.chmod(0o000)
    got = _as_unprivileged(lambda: LOADERS[loader](path))
    cls, is_kit, message = got.split("|", 2)
    assert (cls, is_kit) == ("InputFileError", "True"), got
    assert message.startswith(f"{path}: cannot read") and "permission denied" in message


# ------------------------------------------------------------------------------------------------
# Memory and time


def _newline_bomb(path: Path, mib: int) -> None:
    """A gzip file of ``mib`` MiB of newlines (about 1000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\n" * (1 << 20)
    with path.open("wb") as fh:
        for _ in range(mib):
            fh.write(c.compress(block))
        fh.write(c.flush())


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.slow
def test_gzip_bomb_fails_fast_with_a_clear_error(tmp_path: Path, loader: str) -> None:
    bomb = tmp_path / "bomb.log.gz"
    _newline_bomb(bomb, 512)
    assert bomb.stat().st_size < 1 << 20
    t0 = time.monotonic()
    got = _run_isolated(f"result = kit.{loader}({str(bomb)!r})", timeout=120, address_space=2 << 30)
    assert got.get("error") == "InputFormatError", got
    assert "gzip bomb" in got["message"] and str(bomb) in got["message"]
    assert time.monotonic() - t0 < 60


def test_gzip_cap_leaves_real_files_alone(tmp_path: Path) -> None:
    # a real log compresses about 15:1: far below the cap
    gz = tmp_path / "unbound.log.gz"
    gz.write_bytes(gzip.compress(UNBOUND_LOG.read_bytes()))
    assert kit.read_unbound_log(gz).lines == UNBOUND_LOG.read_bytes().count(b"\n")
    # and the cap itself can be lowered (or raised) per call
    from kit.sources._io import read_raw

    with pytest.raises(InputFormatError, match="gzip bomb"):
        read_raw(gz, max_ratio=2, min_limit=0)


def test_grafana_csv_with_20000_columns_is_fast(tmp_path: Path) -> None:
    cols = 20_000
    header = "Time," + ",".join(f'"series_{i}"' for i in range(cols))
    rows = [f"{1_600_000_000_000 + 15_000 * r}," + ",".join(["1.5"] * cols) for r in range(3)]
    wide = tmp_path / "wide.csv"
    wide.write_text("\n".join([header, *rows]) + "\n")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = kit.read_metrics(wide)
    elapsed = time.perf_counter() - t0
    assert df.height == 3 * cols
    # before: about 15-30 s (polars called once per column); now well under a second
    assert elapsed < 6, f"{elapsed:.1f} s for {cols} columns"


@pytest.mark.slow
def test_api_json_memory_stays_near_the_frame(tmp_path: Path) -> None:
    """A 35 MB API matrix (1.44 M samples): the reader used 11.8x its frame above the process's
    start (the parsed document held a list, a float and a str per sample); now about 3x."""
    sys.path.insert(0, str(REPO / "bench"))
    from bench_metrics import gen_api_json

    path = tmp_path / "api.json"
    gen_api_json(path, 25)
    code = (
        "import re\n"
        "def hwm():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) * 1024\n"
        # the loader's modules (polars, kit.sources.metrics.prometheus: ~55 MB) are imported before the base
        "read_metrics = kit.read_metrics\n"
        "base = hwm()\n"
        f"df = read_metrics({str(path)!r})\n"
        "result = ((hwm() - base) / df.estimated_size(), df.height)\n"
    )
    got = _run_isolated(code, timeout=300, address_space=8 << 30)
    ratio, rows = ast.literal_eval(got["ok"])
    assert rows == 1_440_000
    assert ratio <= 4.0, f"peak {ratio:.1f}x the frame"


def test_unbound_include_cycle_is_named_at_once(tmp_path: Path) -> None:
    conf = tmp_path / "unbound.conf"
    conf.write_text(UNBOUND_CONF.read_text() + "\ninclude: *.conf\n")
    line = len(UNBOUND_CONF.read_text().splitlines()) + 2
    # before: the file was read again 10 levels deep (ten copies of a large file in memory)
    with pytest.raises(InputFormatError, match="include cycle") as info:
        kit.read_unbound_conf(conf)
    assert (info.value.path, info.value.line) == (str(conf), line)


@pytest.mark.parametrize("loader", ["read_corefile", "read_unbound_conf"])
def test_config_with_a_line_of_megabytes_is_refused_fast(tmp_path: Path, loader: str) -> None:
    src = COREFILE if loader == "read_corefile" else UNBOUND_CONF
    lines = src.read_text().splitlines()
    lines.insert(3, "    # " + '""' * 2_000_000)  # 4 MB of quote pairs: millions of tokens
    path = tmp_path / src.name
    path.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(InputFormatError, match="a line of more than 65,536 characters") as info:
        LOADERS[loader](path)
    assert info.value.line == 4
    assert time.perf_counter() - t0 < 2


def test_grafana_cell_with_100k_blanks_is_rejected_fast(
    shared_fixtures: Path, tmp_path: Path
) -> None:
    rows = (shared_fixtures / "metrics" / "grafana_export_mpawlik_columns.csv").read_text()
    lines = rows.splitlines()
    cells = lines[1].split(";")
    # found by tools/fuzz.py: 27-40 s before (the formatted-value regex backtracked)
    cells[1] = "8" + " " * 100_000 + ".192"
    lines[1] = ";".join(cells)
    bad = tmp_path / "grafana.csv"
    bad.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(InputFormatError, match="not a number or a number with a unit") as info:
        kit.read_metrics(bad)
    assert time.perf_counter() - t0 < 3
    assert info.value.line == 2 and len(str(info.value)) < 500
