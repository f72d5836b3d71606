"""Command line of the lab: ``python -m lab run --out DIR [--mode tcp|udp] [--phases ...] [--replace]``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lab.core import LabConfig, LabError, parse_phases, run_lab

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the lab, print a one-paragraph summary; exit 1 on a lab error."""
    ap = argparse.ArgumentParser(prog="python -m lab", description="DNS incident lab (needs root)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the lab once and write a run folder")
    r.add_argument("--out", required=True, type=Path, help="run folder to write")
    r.add_argument(
        "--mode",
        choices=["tcp", "udp"],
        default="tcp",
        help="tcp: changed nodes switch to tcp-upstream at the incident; udp: no change",
    )
    r.add_argument(
        "--phases",
        default="healthy=20,incident=60,fix=20",
        help="timeline, NAME=SECONDS in order healthy,incident[,fix] (default: %(default)s)",
    )
    r.add_argument("--nodes", type=int, default=2, help="node namespaces (default: %(default)s)")
    r.add_argument(
        "--control-nodes",
        type=int,
        default=1,
        help="last nodes that stay on UDP as a control (default: %(default)s)",
    )
    r.add_argument(
        "--qps", type=float, default=30.0, help="queries/s per node (default: %(default)s)"
    )
    r.add_argument(
        "--miss-share", type=float, default=0.5, help="share of unique names (default: %(default)s)"
    )
    r.add_argument(
        "--drop",
        default="random:0.5",
        help="SYN drop in the upstream: none, random:P or rate:N per source/s (default: %(default)s)",
    )
    r.add_argument(
        "--prefix", default="dnskit", help="namespace name prefix (default: %(default)s)"
    )
    r.add_argument("--seed", type=int, default=5)
    r.add_argument("--client-timeout", type=float, default=20.0, help="dnsperf -t in seconds")
    r.add_argument("--no-prometheus", action="store_true", help="skip exporter and Prometheus")
    r.add_argument("--replace", action="store_true", help="overwrite --out if it exists")
    r.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = LabConfig(
            out=args.out,
            mode=args.mode,
            phases=parse_phases(args.phases),
            nodes=args.nodes,
            control_nodes=args.control_nodes,
            qps=args.qps,
            miss_share=args.miss_share,
            drop=args.drop,
            prefix=args.prefix,
            replace=args.replace,
            seed=args.seed,
            client_timeout_s=args.client_timeout,
            prometheus=not args.no_prometheus,
        )
        run = run_lab(cfg)
    except (LabError, ValueError) as exc:
        ap.exit(1, f"lab: {exc}\n")
    except KeyboardInterrupt:
        ap.exit(130, "lab: interrupted; cleaned up\n")
    counts: dict[str, object] = run["counts"]  # type: ignore[assignment]
    print(
        json.dumps(
            {
                "out": str(args.out),
                "change_time": run["change_time"],
                "syn_seen": counts["syn_seen"],
                "syn_dropped": counts["syn_dropped"],
            }
        )
    )
    return 0
