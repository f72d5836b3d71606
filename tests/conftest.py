"""Shared fixtures: where the repo, its test data and ../shared are; tools that tests need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: tiny hand-made fixtures, one file per case."""
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """../shared/fixtures: real files from public repositories (see its README and PROVENANCE.tsv).

    Skips when ../shared is absent (it is always present in CI, where a skip here would hide a gap,
    so there it fails instead).
    """
    path = SHARED / "fixtures"
    if not path.is_dir():
        if IN_CI:
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} not present")
    return path


def require_tool(name: str, package: str | None = None) -> str:
    """Return the path of an external program; skip the test when it is missing, fail in CI."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found:
        return found
    msg = f"{name} not installed (Debian package {package or name})"
    if IN_CI:
        pytest.fail(msg + "; .ci/run should have installed it")
    pytest.skip(msg)


def require_root() -> None:
    """Skip unless running as root (network namespaces); fail in CI, which runs as root."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI must run as root")
        pytest.skip("needs root")


@pytest.fixture(scope="session")
def tshark() -> str:
    return require_tool("tshark")


@pytest.fixture(scope="session", autouse=True)
def _capture_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the capture cache of the whole test session out of the user's ~/.cache.

    Set in the environment, so notebook kernels started by the tests use it too.
    """
    if "DNSKIT_CACHE" not in os.environ:
        os.environ["DNSKIT_CACHE"] = str(tmp_path_factory.mktemp("dnskit-cache"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that is not ``notebook``, ``lab``, ``server`` or ``slow`` is ``unit``: the fast
    in-process loop (``make test-fast`` runs ``-m unit``)."""
    heavy = ("notebook", "lab", "server", "slow")
    for item in items:
        if not any(item.get_closest_marker(m) for m in heavy):
            item.add_marker(pytest.mark.unit)


def tshark_fields(tshark: str, pcap: Path, dfilter: str, fields: list[str]) -> pl.DataFrame:
    """tshark -T fields as a frame of strings (one column per field; multi-values joined by ,)."""
    argv = [tshark, "-n", "-r", str(pcap), "-Y", dfilter, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"}
    ).stdout
    rows = [line.split("\t") for line in out.splitlines() if line]
    return pl.DataFrame(rows, schema=dict.fromkeys(fields, pl.String), orient="row")
