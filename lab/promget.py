"""``python -m lab.promget URL [-o FILE]``: one HTTP GET, body to stdout or FILE (what ``curl -sS --fail`` does).

The lab runs it inside its monitoring namespace to export Prometheus's HTTP API answers
(``/api/v1/query_range``) exactly as returned, without needing curl on the machine.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    """Fetch the URL; exit 22 (as curl --fail) on an HTTP error, 7 when the connection fails."""
    ap = argparse.ArgumentParser(prog="python -m lab.promget")
    ap.add_argument("url")
    ap.add_argument("-o", "--output", help="write the body here instead of stdout")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        sys.stderr.write(f"HTTP {exc.code} for {args.url}: {exc.read()[:500]!r}\n")
        return 22
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"cannot fetch {args.url}: {exc}\n")
        return 7
    if args.output:
        with open(args.output, "wb") as f:
            f.write(body)
    else:
        sys.stdout.write(body.decode("utf-8", errors="replace"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
