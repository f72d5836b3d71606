"""The Parquet cache of :func:`kit.sources.capture.read_capture`: one entry per file, keyed by content,
kit version, tshark version and options; tshark's version remembered per binary."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from kit.sources import _tshark
from kit.sources.capture._frames import (
    _capture_name,
    _FileResult,
)

log = logging.getLogger(__name__)

#: Bumped whenever the parsing or the schemas change, so old cache entries are not reused.
CACHE_FORMAT = 3


def _cached_tshark_version(tshark: str, cdir: Path | None) -> str:
    """tshark's version, remembered in the cache folder per binary (path, size, mtime).

    Running ``tshark -v`` costs ~0.2 s, which would dominate a load from the cache.
    """
    if cdir is None:
        return _tshark.tshark_version(tshark)
    try:
        st = Path(tshark).stat()
    except OSError:
        return _tshark.tshark_version(tshark)
    key = f"{os.path.realpath(tshark)}|{st.st_size}|{st.st_mtime_ns}"
    f = cdir / "tshark-versions.json"
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(f.read_text())
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    version = _tshark.tshark_version(tshark)
    known = known if isinstance(known, dict) else {}
    known[key] = version
    with contextlib.suppress(OSError):
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(f)
    return version


def cache_dir() -> Path:
    """The default cache folder: ``$DNSKIT_CACHE``, else ``$XDG_CACHE_HOME/dnskit``, else ``~/.cache/dnskit``."""
    env = os.environ.get("DNSKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dnskit"


def _content_key(path: Path, version: str | None, opts: dict[str, Any]) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if size > (1 << 20):
            fh.seek(max(size - (1 << 20), 1 << 20))
            h.update(fh.read())
    from kit import __version__

    h.update(
        json.dumps(
            [size, __version__, CACHE_FORMAT, version, opts, _capture_name(path)], sort_keys=True
        ).encode()
    )
    return h.hexdigest()[:32]


def _cache_read(cdir: Path, key: str, path: Path) -> _FileResult | None:
    d = cdir / "capture" / key
    parts = {n: d / f"{n}.parquet" for n in ("dns", "tcp", "packets", "meta")}
    if not all(p.is_file() for p in parts.values()):
        return None
    try:
        frames = {n: pl.read_parquet(p) for n, p in parts.items()}
    except Exception as exc:  # a damaged cache entry is removed, then rebuilt
        log.warning("removing unreadable cache entry %s: %s", d, exc)
        shutil.rmtree(d, ignore_errors=True)
        return None
    meta = frames["meta"].with_columns(path=pl.lit(os.fspath(path)), from_cache=pl.lit(True))
    log.info("%s: loaded from cache %s", path, d)
    return _FileResult(frames["dns"], frames["tcp"], frames["packets"], meta)


def _cache_write(cdir: Path, key: str, res: _FileResult) -> None:
    final = cdir / "capture" / key
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        for n in ("dns", "tcp", "packets", "meta"):
            getattr(res, n).write_parquet(tmp / f"{n}.parquet", compression="lz4", statistics=False)
        try:
            tmp.rename(final)
        except OSError:  # another process wrote it first
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
    except OSError as exc:
        log.warning("could not write capture cache under %s: %s", cdir, exc)
