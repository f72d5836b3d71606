"""The ``dnskit`` command line.

Subcommands
-----------
summarize FILE...   key numbers of each artefact (``--json`` for machine-readable output)
report [ARTEFACTS...] [-p NAME VALUE]... -o OUT.html
                    run the notebooks on the artefacts and write one self-contained HTML report
findings ARTEFACTS... [--json | --format md]
                    the verdict: root cause, mechanism, symptoms, what was ruled out, and the
                    command that confirms each finding (JSON for automation, Markdown for a ticket)
notebooks DIR [ARTEFACTS...]
                    write working copies of the notebooks, pointed at the artefacts, into DIR
open [ARTEFACTS...] [--dir DIR] [-- JUPYTERLAB OPTIONS...]
                    the same into DIR (default: dnskit-notebooks), then start JupyterLab there
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from kit.errors import KitError

log = logging.getLogger(__name__)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dnskit",
        description="DNS Incident Kit: load CoreDNS logs, captures and metric exports; find the cause.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what the kit does to stderr")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "summarize",
        help="print the key numbers of each artefact (files, globs or folders)",
        description="Recognise each file's kind from its content and print its key numbers.",
    )
    s.add_argument("paths", nargs="+", help="artefact files, globs or folders")
    s.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")

    r = sub.add_parser(
        "report",
        help="run the notebooks on the artefacts and write one self-contained HTML report",
        description=(
            "Recognise each artefact's kind from its content, execute the notebooks that have "
            "inputs (papermill, working directory = the kit's repository), and write one HTML "
            "file with code hidden, findings first, static charts and no network access needed. "
            "Exit status 1 when a notebook failed (the report is still written, with the failure "
            "shown)."
        ),
    )
    r.add_argument(
        "artefacts",
        nargs="*",
        help="artefact files, globs or folders (folders are walked recursively); default: data/sample",
    )
    r.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter (papermill style: True/False/None, int and float are "
        "converted, JSON lists/objects are parsed, anything else is a string); repeatable",
    )
    r.add_argument(
        "-o", "--output", required=True, help="the HTML file to write (folders are created)"
    )
    r.add_argument(
        "--notebook",
        action="append",
        default=None,
        metavar="FILE",
        help="run this notebook (py:percent .py or .ipynb) instead of the kit's notebooks; repeatable",
    )
    r.add_argument(
        "--keep-executed",
        metavar="DIR",
        default=None,
        help="keep the executed notebooks (.ipynb) in DIR",
    )
    r.add_argument(
        "--title", default="DNS incident report", help="the report's title (default: %(default)s)"
    )
    r.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="worker processes running notebooks at the same time, each with its own kernel; "
        f"more than 1 helps on an idle machine with several cores (this one has {os.cpu_count()}) "
        "(default: %(default)s)",
    )
    r.add_argument(
        "--isolated",
        action="store_true",
        help="give every notebook a kernel of its own (default: notebooks share one kernel per "
        "job, each starting from an empty namespace, so imports are paid once)",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="maximum seconds per notebook cell (default: %(default)s)",
    )
    f = sub.add_parser(
        "findings",
        help="run the checks on the artefacts and print the verdict (text, JSON or Markdown)",
        description=(
            "Recognise each artefact's kind from its content, run every check that has its "
            "inputs, and print the verdict: the cause in one sentence, the impact, where, when, "
            "the fix, the findings by role (root cause, mechanism, symptom, ruled out, context) "
            "with severity and the command that confirms each, and the checks that could not run "
            "for lack of an input. Confirm commands name the artefacts as given here."
        ),
    )
    f.add_argument("artefacts", nargs="+", help="artefact files, globs or folders")
    f.add_argument(
        "--format",
        choices=("text", "md", "json"),
        default="text",
        help="text (default), md: Markdown to paste into a ticket or chat, json: for automation",
    )
    f.add_argument("--json", action="store_true", help="same as --format json")
    f.add_argument(
        "--change-time", default=None, help="ISO-8601 time of the suspected change (UTC)"
    )
    f.add_argument("--fix-time", default=None, help="ISO-8601 time of the fix (UTC)")
    f.add_argument(
        "--slow-threshold",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="a client answer at least this slow is slow (default: %(default)s)",
    )
    f.add_argument(
        "--upstream",
        action="append",
        default=None,
        metavar="ADDRESS",
        help="upstream resolver address (repeatable; default: from the configs and the capture)",
    )

    n = sub.add_parser(
        "notebooks",
        help="write working copies of the notebooks, pointed at the artefacts, into a folder",
        description=(
            "Write the kit's notebooks (jupytext .py) into DIR with their artefacts parameter set "
            "to the given files, globs or folders (as absolute paths; none: the sample data of "
            "the checkout). Open and run them there: the kit's own notebooks are never changed. "
            "A copy that exists with other content (your edits) is kept unless --force."
        ),
    )
    n.add_argument("dir", help="the folder to write them into (created if needed)")
    n.add_argument("artefacts", nargs="*", help="artefact files, globs or folders of the incident")
    n.add_argument("--force", action="store_true", help="replace copies that were edited")

    o = sub.add_parser(
        "open",
        help="write working copies of the notebooks and start JupyterLab on them",
        description=(
            "Like `dnskit notebooks`, into --dir, then set JupyterLab up to open .py notebooks "
            "as notebooks on double-click (jupytext's viewer, in this environment's JupyterLab "
            "settings overrides) and start it there with this Python's kernel. Options after "
            "`--` go to JupyterLab (e.g. -- --no-browser --port 8899)."
        ),
    )
    o.add_argument("artefacts", nargs="*", help="artefact files, globs or folders of the incident")
    o.add_argument(
        "--dir",
        default=None,
        help="the folder of the working copies (default: dnskit-notebooks in the current "
        "directory)",
    )
    o.add_argument("--force", action="store_true", help="replace copies that were edited")
    o.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="write the copies and the settings, print the JupyterLab command, do not start it",
    )
    return p


def _findings(args: argparse.Namespace) -> int:
    import kit.findings as kf

    verdict = kf.findings_for_artefacts(
        args.artefacts,
        change_time=args.change_time,
        fix_time=args.fix_time,
        slow_threshold_s=args.slow_threshold,
        upstreams=args.upstream,
    )
    fmt = "json" if args.json else args.format
    if fmt == "json":
        json.dump(kf.verdict_json(verdict), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif fmt == "md":
        sys.stdout.write(kf.verdict_markdown(verdict))
    else:
        sys.stdout.write(kf.verdict_text(verdict))
    return 0


def parse_value(text: str) -> Any:
    """Convert a ``-p`` value the way papermill does, plus JSON lists and objects.

    ``True``/``False``/``None`` become the Python constants, integers and floats become numbers,
    text starting with ``[`` or ``{`` is parsed as JSON, anything else stays a string.

    Raises
    ------
    ValueError
        Text starting with ``[`` or ``{`` is not valid JSON.
    """
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"-p value {text!r} looks like JSON but does not parse: {exc}"
            ) from exc
    return text


def _progress(message: str) -> None:
    sys.stderr.write(f"dnskit report: {message}\n")
    sys.stderr.flush()


def _report(args: argparse.Namespace) -> int:
    from kit.report import render

    try:
        for name, value in args.parameter:
            for text in (name, value):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    shown = os.fsencode(text).decode("utf-8", "backslashreplace")
                    raise ValueError(
                        f"-p {name} {shown}: not valid UTF-8 (parameters travel as JSON text)"
                    ) from None
        params = {name: parse_value(value) for name, value in args.parameter}
    except ValueError as exc:
        sys.stderr.write(f"dnskit report: error: {exc}\n")
        return 2
    try:
        result = render(
            args.notebook,
            parameters=params,
            output_html=args.output,
            artefacts=args.artefacts or None,
            executed_dir=args.keep_executed,
            title=args.title,
            timeout=args.timeout,
            jobs=args.jobs,
            share_kernel=not args.isolated,
            progress=_progress,
        )
    except ValueError as exc:
        sys.stderr.write(f"dnskit report: error: {exc}\n")
        return 2
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        sys.stderr.write(f"dnskit report: error: {exc}\n")
        return 1
    sys.stderr.write("dnskit report: summary:\n")
    for run in result.runs:
        detail = f": {run.reason}" if run.reason else ""
        sys.stderr.write(f"dnskit report: {run.name} {run.status} ({run.seconds:.1f} s){detail}\n")
    arts = result.artefacts
    unreadable = arts.filter(arts["read_error"] != "")
    used = arts.filter(arts["used"]).height
    ignored = arts.height - used - unreadable.height
    sys.stderr.write(
        f"dnskit report: wrote {result.output_html} ({len(result.findings)} finding(s), "
        f"{used} artefact(s) used, "
        + (f"{unreadable.height} could not be read, " if unreadable.height else "")
        + f"{ignored} ignored)\n"
    )
    for row in unreadable.iter_rows(named=True):
        sys.stderr.write(
            f"dnskit report: {_printable(row['path'])} could not be read "
            f"({_printable(row['read_error'])})\n"
        )
    if not result.ok:
        names = ", ".join(r.name for r in result.failed)
        sys.stderr.write(f"dnskit report: error: notebook(s) failed: {names}\n")
        return 1
    return 0


def _notebooks(args: argparse.Namespace) -> tuple[int, Any]:
    """Write the working copies; (exit code, the folder) for ``notebooks`` and ``open``."""
    from kit.report.notebooks import WORK_DIR, write_working_copies

    dest = args.dir if args.dir is not None else WORK_DIR
    copies = write_working_copies(dest, args.artefacts or None, force=args.force)
    for c in copies:
        sys.stderr.write(f"dnskit {args.command}: {c.status} {c.path}\n")
    kept = [c for c in copies if c.status == "kept"]
    if kept:
        sys.stderr.write(
            f"dnskit {args.command}: {len(kept)} copy(ies) kept as you edited them; "
            "--force replaces them\n"
        )
    return 0, dest


def _open(args: argparse.Namespace, lab_args: Sequence[str]) -> int:
    import shlex
    import subprocess

    from kit.report.notebooks import lab_command, setup_lab

    _, dest = _notebooks(args)
    try:
        settings = setup_lab()
    except OSError as exc:
        sys.stderr.write(
            f"dnskit open: warning: could not write JupyterLab's settings ({exc}): open the "
            ".py notebooks with right-click > Open With > Notebook\n"
        )
    else:
        sys.stderr.write(f"dnskit open: .py notebooks open as notebooks ({settings})\n")
    command = lab_command(dest, lab_args)
    if args.print_only:
        sys.stdout.write(shlex.join(command) + "\n")
        return 0
    sys.stderr.write(f"dnskit open: {shlex.join(command)}\n")
    sys.stderr.flush()
    if hasattr(os, "execv"):
        # JupyterLab replaces this process: signals (Ctrl+C, a service manager's SIGTERM) reach it
        # directly, and no server outlives a stopped dnskit
        os.execv(command[0], command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 a kit error, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lab_args: list[str] = []
    if "open" in argv and "--" in argv[argv.index("open") :]:
        cut = argv.index("--", argv.index("open"))
        argv, lab_args = argv[:cut], argv[cut + 1 :]
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "summarize":
            from kit.analyses.summary import summarize_paths

            result = summarize_paths(args.paths)
            if args.json:
                json.dump(result, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
            else:
                from kit.analyses.summary import format_summary

                sys.stdout.write(format_summary(result))
            return 0 if not result.get("failed") else 1
        if args.command == "report":
            return _report(args)
        if args.command == "findings":
            return _findings(args)
        if args.command == "notebooks":
            return _notebooks(args)[0]
        if args.command == "open":
            return _open(args, lab_args)
    except (KitError, FileNotFoundError) as exc:
        sys.stderr.write(f"dnskit: error: {exc}\n")
        return 1
    return 2


def _printable(text: str) -> str:
    """Text from an artefact for the terminal: control characters shown as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
