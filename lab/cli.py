"""Command line of the lab: ``python -m lab run --scenario NAME --out DIR [--phases ...]``,
``python -m lab scenarios`` (the catalogue)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from lab.core import LabConfig, LabError, parse_phases, run_lab
from lab.scenarios import SCENARIOS, scenario

log = logging.getLogger(__name__)

# option name -> LabConfig field (options left out take the scenario's value, then LabConfig's)
_FIELDS = {
    "mode": "mode",
    "phases": "phases",
    "nodes": "nodes",
    "control_nodes": "control_nodes",
    "qps": "qps",
    "miss_share": "miss_share",
    "drop": "drop",
    "client_timeout": "client_timeout_s",
    "burst_qps": "burst_qps",
    "stub_lps": "stub_lps",
    "stub_timeout": "stub_timeout_s",
    "stub_attempts": "stub_attempts",
    "limit_pps": "limit_pps",
    "gzip_over": "gzip_over",
    "dnstap": "dnstap",
}


def config_values(name: str, *, short: bool = False, **given: Any) -> dict[str, Any]:
    """LabConfig keyword values for scenario ``name``: LabConfig's defaults, then the scenario's
    ``defaults``, then (``short``) its ``short`` overrides, then the non-``None`` ``given``."""
    sc = scenario(name)
    vals: dict[str, Any] = {**sc.defaults, **(sc.short if short else {})}
    vals.update({k: v for k, v in given.items() if v is not None})
    if isinstance(vals.get("phases"), str):
        vals["phases"] = parse_phases(vals["phases"])
    return {"scenario": name, **vals}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the lab, print a one-line JSON summary; exit 1 on a lab error."""
    ap = argparse.ArgumentParser(prog="python -m lab", description="DNS incident lab (needs root)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("scenarios", help="list the scenarios (name, cause, change)")
    r = sub.add_parser("run", help="run the lab once and write a run folder")
    r.add_argument("--out", required=True, type=Path, help="run folder to write")
    r.add_argument(
        "--scenario",
        default="forced-tcp-syn-drops",
        choices=list(SCENARIOS),
        help="what goes wrong at the start of the incident phase (default: %(default)s); "
        "the options below default to the scenario's values",
    )
    r.add_argument("--short", action="store_true", help="the scenario's short form (as run in CI)")
    r.add_argument(
        "--mode",
        choices=["tcp", "udp"],
        help="forced-tcp-syn-drops: tcp: changed nodes switch to tcp-upstream at the incident; "
        "udp: no change",
    )
    r.add_argument(
        "--phases",
        help="timeline, NAME=SECONDS in order healthy,incident[,fix] (e.g. healthy=20,incident=60)",
    )
    r.add_argument("--nodes", type=int, help="node namespaces")
    r.add_argument("--control-nodes", type=int, help="last nodes left unchanged, as a control")
    r.add_argument("--qps", type=float, help="dnsperf queries/s per node")
    r.add_argument("--miss-share", type=float, help="share of unique names (cache misses)")
    r.add_argument("--drop", help="SYN drop in the upstream: none, random:P or rate:N per source/s")
    r.add_argument("--burst-qps", type=float, help="packet-rate-limit: burst queries/s")
    r.add_argument(
        "--stub-lps",
        type=float,
        help="glibc stub client (getaddrinfo) lookups/s per node; in ndots-search-expansion the "
        "pods' application, in the other scenarios a pod of its own (<prefix>-stubN, "
        "169.254.2.N) resolving one never-asked name per lookup",
    )
    r.add_argument(
        "--stub-timeout",
        type=int,
        help="the stub clients' resolv.conf options timeout:N (1..30 s a try waits; glibc's "
        "default 5); needs --stub-lps",
    )
    r.add_argument(
        "--stub-attempts",
        type=int,
        help="the stub clients' resolv.conf options attempts:M (1..5 tries; glibc's default 2); "
        "needs --stub-lps",
    )
    r.add_argument("--limit-pps", type=float, help="packet-rate-limit: upstream pps limit")
    r.add_argument(
        "--gzip-over",
        type=int,
        help="gzip captures/logs/dnsperf files above this many bytes at the end (0: never)",
    )
    r.add_argument(
        "--prefix", default="dnskit", help="namespace name prefix (default: %(default)s)"
    )
    r.add_argument("--seed", type=int, default=5)
    r.add_argument("--client-timeout", type=float, help="dnsperf -t in seconds")
    r.add_argument("--no-prometheus", action="store_true", help="skip exporter and Prometheus")
    r.add_argument(
        "--dnstap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="unbound also logs dnstap through fstrm_capture (dnstap/nodeN.fstrm), in any "
        "scenario; on by default in the healthy scenario's full form (--no-dnstap turns it off)",
    )
    r.add_argument("--replace", action="store_true", help="overwrite --out if it exists")
    r.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "scenarios":
        for sc in SCENARIOS.values():
            print(f"{sc.name}\t{','.join(sc.cause) or '-'}\t{sc.change}")
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        given = {field: getattr(args, opt) for opt, field in _FIELDS.items()}
        vals = config_values(args.scenario, short=args.short, **given)
        cfg = LabConfig(
            out=args.out,
            prefix=args.prefix,
            replace=args.replace,
            seed=args.seed,
            prometheus=not args.no_prometheus,
            **vals,
        )
        log.info("config: %s", dataclasses.asdict(cfg))
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
                "scenario": args.scenario,
                "change_time": run["change_time"],
                "syn_seen": counts["syn_seen"],
                "syn_dropped": counts["syn_dropped"],
            }
        )
    )
    return 0
