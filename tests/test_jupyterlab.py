"""The first thing a user does: open a notebook in JupyterLab and run it, in a real browser.

A temporary git checkout of the repository (its files committed, so ``git status`` starts clean)
runs ``dnskit open`` exactly as ``make jupyter`` does: working copies in ``dnskit-notebooks/``
(ignored by git), JupyterLab's default viewer for ``.py`` set by the kit, JupyterLab started there
with the kit's kernel. Debian's ``chromium``, driven by playwright (no browser download), then
double-clicks ``01-latency-overview.py`` and ``05-upstream-tcp.py`` in the file browser, checks
each opens as a notebook, runs all cells from the Run menu, and checks: every cell ran, no error
or stderr output, every chart cell shows an SVG; then saves. The browser reaches nothing but
127.0.0.1 (every other request is aborted and recorded; the test asserts there was none: no CDN),
and the checkout's ``git status --porcelain`` is empty afterwards.

The JupyterLab user settings, workspaces and runtime files live in the test's temporary folder,
so the user's own JupyterLab settings neither help nor hinder the default viewer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOKS = ("01-latency-overview", "02-query-logs", "04-capture-dns", "05-upstream-tcp")
# a cell draws a chart when it calls one of the kit's chart functions
CHART_CALL = re.compile(r"\bkit\.(?:charts|findings)\.\w*(?:chart|with_change_marker)\(")

pytestmark = [
    pytest.mark.notebook,  # starts JupyterLab, kernels and a browser
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed"),
]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (tracked, and new ones not ignored) committed in a fresh git repo."""
    dest = tmp_path_factory.mktemp("lab") / "repo"
    dest.mkdir()
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        rel = Path(os.fsdecode(raw)) if raw else None
        if rel is None or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    for so in (REPO / "kit").glob("_fastlog*.so"):  # the built extension (ignored by git)
        shutil.copy2(so, dest / "kit" / so.name)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(
        dest,
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@localhost",
        "commit",
        "-q",
        "-m",
        "snapshot",
    )
    assert _git(dest, "status", "--porcelain") == ""
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """JupyterLab started by ``dnskit open`` in the checkout (as ``make jupyter`` does)."""
    home = tmp_path_factory.mktemp("labhome")
    port = _free_port()
    token = "dnskit-test"
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(checkout),  # the server, jupytext and the kernel use this checkout's kit
        JUPYTERLAB_SETTINGS_DIR=str(home / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
    )
    log = (home / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kit",
            "open",
            "--",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:]
                )
            time.sleep(0.5)
        yield {"url": f"{base}/lab?token={token}", "log": home / "lab.log", "proc": proc}
    finally:
        # `dnskit open` became JupyterLab (exec); its kernels are in the same session
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError):  # kernels JupyterLab did not stop
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


_CELLS_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const nb = panel && panel.content;
  if (!nb || !nb.widgets) return null;
  return {
    path: panel.context.path,
    factory: panel.context && panel.constructor.name,
    busy: panel.sessionContext.kernelDisplayStatus,
    kernel: panel.sessionContext.kernelDisplayName,
    cells: nb.widgets.map((c) => {
      const m = c.model;
      const outs = m.type === 'code' ? m.outputs.toJSON() : [];
      return {
        type: m.type,
        source: m.sharedModel.getSource(),
        count: m.type === 'code' ? m.executionCount : null,
        outputs: outs.map((o) => ({
          output_type: o.output_type,
          name: o.name || null,
          mimes: Object.keys(o.data || {}),
          text: o.output_type === 'error' ? o.ename + ': ' + o.evalue
                : (o.output_type === 'stream' ? String(o.text).slice(0, 500) : null),
        })),
        svg_shown: c.node.querySelectorAll(
          '.jp-OutputArea .jp-RenderedSVG img[src^="data:image/svg+xml"],'
          + ' .jp-OutputArea .jp-RenderedSVG svg').length,
        stderr_shown: c.node.querySelectorAll(
          '.jp-OutputArea [data-mime-type="application/vnd.jupyter.stderr"]').length,
      };
    }),
  };
}
"""


def _run_notebook_by_hand(page: Any, name: str, timeout_s: float = 240) -> dict[str, Any]:
    """Double-click ``name.py`` in the file browser, Run All Cells from the menu, wait for it."""
    item = page.locator(".jp-DirListing-item", has_text=f"{name}.py")
    item.wait_for(timeout=60_000)
    item.dblclick()
    # a notebook panel opens (not a text editor) with this file
    try:
        page.wait_for_function(
            """(path) => {
                 const w = window.jupyterapp.shell.currentWidget;
                 return w && w.context && w.context.path.endsWith(path)
                        && w.node.classList.contains('jp-NotebookPanel')
                        && w.sessionContext.kernelDisplayStatus === 'idle';
               }""",
            arg=f"{name}.py",
            timeout=90_000,
        )
    except Exception as exc:
        shown = page.evaluate(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return w ? w.node.className + ' ' + (w.context ? w.context.path : '') : 'nothing'; }"
        )
        raise AssertionError(
            f"double-click on {name}.py did not open a notebook with an idle kernel; the "
            f"current tab is: {shown}"
        ) from exc
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        state = page.evaluate(_CELLS_JS)
        code = [c for c in state["cells"] if c["type"] == "code"]
        errored = any(o["output_type"] == "error" for c in code for o in c["outputs"])
        if state["busy"] == "idle" and (errored or all(c["count"] for c in code)):
            break
        time.sleep(1)
    assert state is not None
    return state


def test_double_click_run_all_in_jupyterlab(lab: dict[str, Any], checkout: Path) -> None:
    pw = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if re.match(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/", url) or url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with pw.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                # besides the route below: anything not on 127.0.0.1 goes to a closed port
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1",
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", only_loopback)
            page = context.new_page()
            page.goto(lab["url"])
            states = {name: _run_notebook_by_hand(page, name) for name in NOTEBOOKS}
            # save (as autosave would): only the working copies change
            page.keyboard.press("Control+s")
            page.wait_for_function(
                "() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                timeout=30_000,
            )
        finally:
            browser.close()

    for name, state in states.items():
        assert state["path"] == f"{name}.py"
        code = [c for c in state["cells"] if c["type"] == "code"]
        assert len(code) > 5, f"{name}: opened as a notebook with its cells"
        problems = [
            f"cell {i}: {o['output_type']} {o['name'] or ''} {o['text']}"
            for i, c in enumerate(code)
            for o in c["outputs"]
            if o["output_type"] == "error" or o["name"] == "stderr"
        ]
        assert problems == [], f"{name}: error output after Run All: {problems}"
        assert [i for i, c in enumerate(code) if not c["count"]] == [], f"{name}: cells not run"
        assert all(c["stderr_shown"] == 0 for c in code)
        charts = [c for c in code if CHART_CALL.search(c["source"])]
        assert len(charts) >= 3, f"{name}: chart cells found: {len(charts)}"
        for c in charts:
            mimes = {m for o in c["outputs"] for m in o["mimes"]}
            assert "image/svg+xml" in mimes, f"{name}: chart cell without SVG: {c['source'][:80]}"
            assert "text/html" not in mimes, f"{name}: chart as HTML (JavaScript): {c['source']}"
            assert c["svg_shown"], f"{name}: SVG not shown: {c['source'][:80]}"
        assert state["kernel"] != "No Kernel"

    print(
        {
            n: (
                s["kernel"],
                len([c for c in s["cells"] if CHART_CALL.search(c["source"])]),
                sum(c["svg_shown"] for c in s["cells"]),
            )
            for n, s in states.items()
        },
        blocked,
    )
    assert blocked == [], f"the browser tried to reach beyond 127.0.0.1: {blocked[:5]}"
    assert _git(checkout, "status", "--porcelain", "--untracked-files=all") == ""
    copies = checkout / "dnskit-notebooks"
    assert sorted(p.stem for p in copies.glob("*.py")) == sorted(
        p.stem for p in (checkout / "notebooks").glob("*.py")
    )
    settings = json.loads(
        next(
            Path(sys.prefix, "share", "jupyter", "lab", "settings", "overrides.d").glob(
                "dns-incident-kit.json"
            )
        ).read_text()
    )
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"] == {
        "python": "Jupytext Notebook"
    }
