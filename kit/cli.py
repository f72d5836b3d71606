"""The ``dnskit`` command line.

Subcommands
-----------
summarize FILE...   key numbers of each artefact (``--json`` for machine-readable output)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 a kit error, 2 usage error)."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "summarize":
            from kit.summary import summarize_paths

            result = summarize_paths(args.paths)
            if args.json:
                json.dump(result, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
            else:
                from kit.summary import format_summary

                sys.stdout.write(format_summary(result))
            return 0 if not result.get("failed") else 1
    except (KitError, FileNotFoundError) as exc:
        sys.stderr.write(f"dnskit: error: {exc}\n")
        return 1
    return 2
