"""The wheel: built from the repository, installed in a fresh virtualenv outside it, and
``dnskit report`` rendering a folder holding one capture from a directory that is not the checkout.

The fresh venv gets the kit's dependencies from the test's own environment through a ``.pth``
file (installing polars, altair, jupyter... again would take minutes); its ``.pth`` files are not
processed there, so the editable install of the checkout is *not* visible: ``import kit`` finds
the wheel's copy. nbconvert's templates are data files installed under the environment's
``share/jupyter``, so that one folder is linked into the fresh venv, as ``pip install nbconvert``
would have put it there. ``PYTHONPATH`` is removed from the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.notebook  # builds and installs a wheel, renders a report with kernels


def _source_tree(dest: Path) -> Path:
    """The repository's files (tracked, plus new ones not ignored) copied to ``dest``."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git to list the repository's files")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = _source_tree(base / "src")
    out = base / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("dns_incident_kit-*.whl")
    return whl


def test_wheel_ships_the_notebooks(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("kit/_notebooks/")}
        names = z.namelist()
    sources = sorted((REPO / "notebooks").glob("[0-9]*.py"))
    assert sources
    for nb in sources:
        assert shipped.get(nb.name) == nb.read_bytes(), f"{nb.name} not shipped as is"
    assert "kit/templates/dnskit/index.html.j2" in names
    assert not any(n.startswith(("tests/", "data/", "notebooks/")) for n in names)


@pytest.mark.timeout(300)
def test_installed_wheel_renders_a_report_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "_dnskit_test_deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    templates = Path(sys.prefix) / "share" / "jupyter" / "nbconvert"
    if templates.is_dir():
        (venv / "share" / "jupyter").mkdir(parents=True)
        (venv / "share" / "jupyter" / "nbconvert").symlink_to(templates)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    where = subprocess.run(
        [
            str(py),
            "-c",
            "import kit, kit.report.notebooks as n; from jupyter_client.kernelspec import "
            "KernelSpecManager as K; print(kit.__file__); print(n.notebook_dir()); "
            "print(K().get_kernel_spec('python3').argv[0])",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.splitlines()
    assert where[0].startswith(str(venv)), f"kit imported from {where[0]}, not the wheel"
    assert where[1].startswith(str(venv)) and where[1].endswith("_notebooks")
    assert where[2] == str(py), f"the report's kernel would run {where[2]}"

    incident = tmp_path / "incident"
    incident.mkdir()
    shutil.copy(REPO / "data" / "sample" / "captures" / "node1.pcap", incident / "node-a.pcap")
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [str(venv / "bin" / "dnskit"), "report", "../incident", "-o", "report.html"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no notebook to run" not in proc.stderr
    html = (work / "report.html").read_text(encoding="utf-8")
    assert "Traceback" not in html
    assert "node-a.pcap" in html
    # the capture's results: its client transactions and the notebooks that read captures
    for name in ("04-capture-dns", "05-upstream-tcp", "06-findings"):
        assert f"dnskit report: {name} ok" in proc.stderr
    assert "01-latency-overview skipped" in proc.stderr  # no metrics in that folder
    assert html.count("<svg") >= 3

    # no sample data outside the checkout: without artefacts, a usage error that says so
    proc = subprocess.run(
        [str(venv / "bin" / "dnskit"), "report", "-o", "sample.html"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "no artefacts given and no sample data here" in proc.stderr
    assert not (work / "sample.html").exists()
